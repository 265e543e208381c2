"""The dead letters page in a real browser: the list, a requeue of a selection and a purge,
each through its confirmation page, each checked in the store through the REST API."""

from __future__ import annotations

import pytest

from tests.browser._browser import Browser

pytestmark = pytest.mark.e2e


def test_the_dead_letters_list_shows_reason_and_error(browser: Browser) -> None:
    task_id = browser.server.seeded["dead"]
    browser.login("admin")
    browser.open("/dead")
    row = browser.css(f"#dead-table tr[data-task-id='{task_id}']")
    assert "ValueError" in row.text
    assert "the ledger is closed" in row.text
    assert int(browser.css("#dead-count").get_attribute("data-count") or 0) >= 1
    browser.shot("dead")


def test_requeue_a_selected_dead_letter_after_confirming(browser: Browser) -> None:
    server = browser.server
    task_id = server.dead("requeue me")
    browser.login("admin")
    browser.open("/dead")
    browser.css(f"#dead-table tr[data-task-id='{task_id}'] input[name=ids]").click()
    browser.css("#dead-delay").send_keys("1h")  # so it waits, instead of dying again at once
    browser.submit("#requeue-selected")
    assert "1 selected dead letter" in browser.css("#dead-confirm-question").text
    assert server.task(task_id)["state"] == "DEAD", "requeued before the confirmation"
    browser.submit("#confirm-button")
    assert "Requeued 1 dead letter" in browser.css("#messages").text
    assert server.task(task_id)["state"] == "SCHEDULED"
    assert not browser.all(f"#dead-table tr[data-task-id='{task_id}']")


def test_purge_a_selected_dead_letter_after_confirming(browser: Browser) -> None:
    server = browser.server
    task_id = server.dead("purge me")
    browser.login("admin")
    browser.open("/dead")
    browser.css(f"#dead-table tr[data-task-id='{task_id}'] input[name=ids]").click()
    browser.submit("#purge-selected")
    assert "purge it for good" in browser.css("#dead-confirm-question").text
    assert server.task(task_id)["state"] == "DEAD", "purged before the confirmation"
    browser.shot("dead-confirm")
    browser.submit("#confirm-button")
    assert "Purged 1 dead letter" in browser.css("#messages").text
    assert server.api.get(f"/v1/tasks/{task_id}").status_code == 404
    assert server.task(server.seeded["dead"])["state"] == "DEAD", "purged more than the selection"
