"""The schedule pages in a real browser: the app's cron schedule listed and shown, paused
and resumed from the list (each change checked through the REST API)."""

from __future__ import annotations

import pytest

from tests.browser._browser import Browser

pytestmark = pytest.mark.e2e

NIGHTLY = "console.nightly"


def test_the_schedules_list_and_a_schedule_page(browser: Browser) -> None:
    browser.login("admin")
    browser.open("/schedules")
    row = browser.css(f"#schedules-table tr[data-schedule='{NIGHTLY}']")
    assert "0 3 * * *" in row.text
    assert "console.report" in row.text
    assert row.find_elements("css selector", ".schedule-next time"), "no next fire shown"
    browser.shot("schedules")
    browser.submit(f"tr[data-schedule='{NIGHTLY}'] a.schedule-link")
    assert browser.css("#schedule-detail").get_attribute("data-schedule") == NIGHTLY
    browser.shot("schedule")


def test_pause_then_resume_a_schedule(browser: Browser) -> None:
    server = browser.server
    browser.login("admin")
    browser.open("/schedules")
    browser.submit(f"tr[data-schedule='{NIGHTLY}'] form.schedule-pause")
    assert browser.css("#schedule-notice").get_attribute("data-done") == "paused"
    assert server.schedule(NIGHTLY)["paused"] is True
    browser.css(f"tr[data-schedule='{NIGHTLY}'] .schedule-paused")
    browser.submit(f"tr[data-schedule='{NIGHTLY}'] form.schedule-resume")
    assert browser.css("#schedule-notice").get_attribute("data-done") == "resumed"
    assert server.schedule(NIGHTLY)["paused"] is False


def test_trigger_a_schedule_now_publishes_its_task(browser: Browser) -> None:
    server = browser.server
    browser.login("admin")
    browser.open(f"/schedules/{NIGHTLY}")
    browser.submit("#schedule-detail form.schedule-trigger")
    assert browser.css("#schedule-notice").get_attribute("data-done") == "triggered"
    task_id = browser.css("#triggered-task").get_attribute("data-task-id") or ""
    assert server.task(task_id)["subject"] == "console.report"
