"""The workflow run pages in a real browser: the list, a run drawn as an SVG graph, and
the two actions, a signal to the waiting human step and a cancel behind its confirmation."""

from __future__ import annotations

import json

import pytest

from tests.browser._browser import Browser, wait_for

pytestmark = pytest.mark.e2e


def test_the_runs_list_and_a_run_drawn_as_a_graph(browser: Browser) -> None:
    run_id = browser.server.seeded["run"]
    browser.login("admin")
    browser.open("/runs")
    row = browser.css(f"#runs-table tr[data-run-id='{run_id}']")
    assert "console.approve" in row.text
    assert "manager.decision" in row.text, "the list says what the run waits on"
    browser.shot("runs")
    browser.open(f"/runs/{run_id}")
    browser.until(lambda d: browser.all("#run-graph[data-dag-drawn] svg"), "the graph drawn")
    steps = {
        node.get_attribute("data-step"): node.get_attribute("class")
        for node in browser.all("#run-graph svg .node")
    }
    assert set(steps) == {"console.check", "manager.decision", "console.pay"}
    assert "state-ACTIVE" in steps["manager.decision"], steps
    assert "state-SUCCEEDED" in steps["console.check"], steps
    assert len(browser.all("#run-graph svg path.edge")) == 2
    browser.shot("run")
    browser.check_log()


def test_a_signal_reaches_the_waiting_step_and_the_run_finishes(browser: Browser) -> None:
    server = browser.server
    run_id = server.waiting_run()
    browser.login("admin")
    browser.open(f"/runs/{run_id}")
    browser.css("#signal-payload").send_keys('{"approved": true}')
    browser.submit("#signal-form")
    assert "Signal sent" in browser.css("#messages").text
    assert server.run(run_id)["signals"] == {"manager.decision": {"approved": True}}
    done = wait_for(lambda: server.run(run_id)["state"] == "SUCCEEDED", "the run finished")
    assert done


def test_cancelling_a_run_asks_first_then_cancels_it(browser: Browser) -> None:
    server = browser.server
    run_id = server.waiting_run()
    browser.login("admin")
    browser.open(f"/runs/{run_id}")
    browser.submit("#cancel-run")
    assert server.run(run_id)["state"] == "RUNNING", "cancelled before the confirmation"
    browser.shot("run-cancel")
    browser.submit("#cancel-form")
    assert "Run cancelled" in browser.css("#messages").text
    assert server.run(run_id)["state"] == "CANCELLED"
    assert browser.css("#run-state").get_attribute("data-state") == "CANCELLED"
    assert not browser.all("#signal-form"), json.dumps(server.run(run_id))
