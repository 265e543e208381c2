"""A ``read`` token's session in a real browser: every page shows its data and no action
form or link; a form forged in the page (with the session's own CSRF value) is refused
with 403 and changes nothing."""

from __future__ import annotations

import pytest

from tests.browser._browser import Browser

pytestmark = pytest.mark.e2e

# Links that lead to an action's confirmation or form: none is shown to a read token.
ACTION_LINKS = "#new-schedule, #edit-link, #delete-link, #cancel-run, #dead-actions, #task-actions"
FORGE = """
const csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
const form = document.createElement("form");
form.method = "post";
form.action = arguments[0];
const field = document.createElement("input");
field.type = "hidden";
field.name = "csrf";
field.value = csrf;
form.appendChild(field);
document.body.appendChild(form);
form.submit();
"""


def test_a_read_token_sees_every_page_and_no_action(browser: Browser) -> None:
    seeded = browser.server.seeded
    pages = [
        "/",
        "/tasks",
        f"/tasks/{seeded['scheduled']}",
        f"/tasks/{seeded['dead']}",
        "/dead",
        "/schedules",
        "/schedules/console.nightly",
        "/runs",
        f"/runs/{seeded['run']}",
        "/workers",
    ]
    browser.login("read")
    for path in pages:
        browser.open(path)
        assert browser.css("main h1").text, f"{path} shows nothing"
        assert browser.actions() == [], f"{path} offers a read token an action"
        assert not browser.all(ACTION_LINKS), f"{path} links a read token to an action"
        assert not browser.all("main input[type=checkbox][name=ids]"), f"{path}: a selection"
    browser.shot("read-only-dead")


def test_a_forged_action_of_a_read_token_is_refused(browser: Browser) -> None:
    server = browser.server
    task_id = server.publish("console.work", {"n": 5}, delay="1h")
    browser.login("read")
    browser.open(f"/tasks/{task_id}")
    with browser.next_page("403"):
        browser.driver.execute_script(FORGE, f"{server.console}/tasks/{task_id}/cancel")
    assert browser.css("main h1").text == "403"
    assert server.task(task_id)["state"] == "SCHEDULED", "a read token cancelled a task"
