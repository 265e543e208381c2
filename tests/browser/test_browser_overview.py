"""The overview and workers pages in a real browser: counts by subject and state, the
charts of the last hour drawn, the worker and the scheduler leader; the overview at phone
size fits the screen."""

from __future__ import annotations

import pytest

from tests.browser._browser import Browser

pytestmark = pytest.mark.e2e

# Whether a canvas has at least one painted pixel: uPlot drew something on it.
PAINTED = """
const canvas = document.querySelector(arguments[0]);
if (!canvas || !canvas.width || !canvas.height) return false;
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) return true; }
return false;
"""


def count(browser: Browser, selector: str) -> int:
    return int(browser.css(selector).text.strip())


def test_the_overview_shows_counts_and_draws_its_charts(browser: Browser) -> None:
    browser.login("admin")
    browser.open("/")
    assert count(browser, "[data-count='running']") >= 1
    assert count(browser, "[data-count='dead']") >= 1
    assert count(browser, "[data-count='waiting']") >= 1, "the task scheduled an hour ahead"
    work = browser.css("#depth-table tr[data-subject='console.work']")
    assert int(work.find_element("css selector", "td[data-state='SCHEDULED']").text) >= 1
    assert browser.css("[data-leader]").text.strip(), "no scheduler leader shown"
    succeeded = int(browser.css("#chart-throughput [data-total='succeeded']").text)
    assert succeeded >= 3
    for chart in ("#chart-throughput", "#chart-failures"):
        browser.until(
            lambda d, chart=chart: d.execute_script(PAINTED, f"{chart} .uplot canvas"),
            f"{chart} drawn",
        )
    browser.shot("overview")
    browser.check_log()


def test_the_overview_fits_a_phone(phone: Browser) -> None:
    phone.login("admin")
    phone.open("/")
    phone.until(
        lambda d: d.execute_script(PAINTED, "#chart-throughput .uplot canvas"), "the chart drawn"
    )
    wide = phone.driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert wide[0] <= wide[1], f"the page is wider than the phone's screen: {wide}"
    phone.shot("overview-phone")
    phone.check_log()


def test_the_workers_page_lists_the_worker_and_the_leader(browser: Browser) -> None:
    browser.login("admin")
    browser.open("/workers")
    rows = browser.all("#workers-table tr[data-worker]")
    assert len(rows) == 1, "atp dev runs one worker"
    assert "console.>" in rows[0].text or "console.work" in rows[0].text
    assert int(rows[0].find_element("css selector", "[data-field='running']").text) >= 1
    assert browser.css("#leader [data-token]").text.strip()
    browser.shot("workers")
