"""The task pages in a real browser: the list with a task in every state, a task's page
with its result and attempts, cancel behind its confirmation, and the list updating by
itself when a task is published while it is open."""

from __future__ import annotations

import pytest

from tests.browser._browser import Browser

pytestmark = pytest.mark.e2e


def test_the_tasks_list_shows_a_task_in_every_state(browser: Browser) -> None:
    seeded = browser.server.seeded
    browser.login("admin")
    browser.open("/tasks")
    states = {
        name: browser.css(f"#tasks-table tr[data-task-id='{seeded[name]}'] .badge").text
        for name in ("succeeded", "running", "dead", "scheduled")
    }
    assert states == {
        "succeeded": "SUCCEEDED",
        "running": "RUNNING",
        "dead": "DEAD",
        "scheduled": "SCHEDULED",
    }
    browser.shot("tasks")


def test_a_task_page_shows_its_payload_result_and_attempts(browser: Browser) -> None:
    task_id = browser.server.seeded["succeeded"]
    browser.login("admin")
    browser.open("/tasks")
    browser.submit(f"#tasks-table tr[data-task-id='{task_id}'] a")
    assert browser.css("#task-id").text == task_id
    assert '"n": 2' in browser.css("#task-payload pre").text
    assert '"double": 4' in browser.css("#task-result pre").text
    attempt = browser.css("#task-attempts li[data-attempt='1']")
    assert attempt.get_attribute("data-outcome") == "succeeded"
    assert "on " in attempt.text, "the attempt names its worker"
    browser.shot("task")


def test_a_dead_task_page_shows_the_failed_attempt(browser: Browser) -> None:
    browser.login("admin")
    browser.open(f"/tasks/{browser.server.seeded['dead']}")
    attempt = browser.css("#task-attempts li[data-attempt='1']")
    assert attempt.get_attribute("data-outcome") == "failed"
    assert "the ledger is closed" in attempt.find_element("css selector", ".attempt-error").text
    assert browser.all("#requeue-form"), "a dead task offers a requeue to an admin"
    browser.shot("task-dead")


def test_cancel_a_task_after_confirming(browser: Browser) -> None:
    server = browser.server
    task_id = server.publish("console.work", {"n": 7}, delay="1h")
    browser.login("admin")
    browser.open(f"/tasks/{task_id}")
    assert not browser.css("#cancel-confirm-button").is_displayed(), "no confirmation step"
    browser.css("#cancel-confirm summary").click()
    browser.submit("#cancel-confirm-button")
    assert "cancelled" in browser.css("#messages").text
    assert server.task(task_id)["state"] == "CANCELLED"
    assert browser.css("#task-state-badge").text == "CANCELLED"


def test_a_task_published_while_the_list_is_open_appears_without_reload(
    browser: Browser,
) -> None:
    browser.login("admin")
    browser.open("/tasks?subject=console.work")
    browser.driver.execute_script("document.documentElement.dataset.sameLoad = 'yes'")
    task_id = browser.server.publish("console.work", {"n": 41})
    browser.until(
        lambda d: browser.all(f"#tasks-table tr[data-task-id='{task_id}']"), "the new task listed"
    )
    same = browser.driver.execute_script("return document.documentElement.dataset.sameLoad")
    assert same == "yes", "the page was reloaded"
    browser.check_log()
