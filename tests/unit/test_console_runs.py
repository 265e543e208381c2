"""The console's workflow runs: the list, a run's graph and steps, signal and cancel, on
memory backends with a manual clock; a read token sees no action and may take none."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from atp.adapters.console import _runs
from atp.adapters.console._format import when
from atp.core.workflows.definition import definition_from_dict
from atp.core.workflows.engine import WorkflowEngine, workflow_store
from atp.core.workflows.runs import Run, RunState, StepRun, StepState
from tests.console_support import Console, console

APPROVAL = {
    "name": "orders.approval",
    "version": 1,
    "steps": [
        {"name": "wait", "kind": "signal", "signal": "go", "timeout": 3600},
        {"name": "pay", "subject": "orders.pay", "compensate": "orders.refund", "after": ["wait"]},
        {
            "name": "ship",
            "subject": "orders.ship",
            "after": ["pay"],
            "when": {"path": "paid", "op": "truthy"},
        },
    ],
}
NAP = {"name": "nap", "version": 1, "steps": [{"name": "nap", "kind": "sleep", "duration": 60}]}
_DAG = re.compile(r'data-dag="([^"]*)"')


async def start(c: Console, definition: dict[str, Any] = APPROVAL, **options: Any) -> Run:
    """Register ``definition`` and start one run of it, as the platform would."""
    engine = WorkflowEngine(c.platform)
    await engine.register([definition_from_dict(definition)])
    return await engine.start(definition["name"], {"order": 7}, **options)


async def stored(c: Console, run_id: str) -> Run:
    return await WorkflowEngine(c.platform).get(run_id)


def dag(page: str) -> dict[str, Any]:
    found = _DAG.search(page)
    assert found, "no graph on the page"
    data: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return data


def nodes(page: str) -> dict[str, dict[str, Any]]:
    return {node["id"]: node for node in dag(page)["nodes"]}


async def test_the_list_shows_each_run_and_what_it_waits_on() -> None:
    async with console() as c:
        await c.login("read")
        run = await start(c)
        page = await c.http.get("/console/runs")
    assert page.status_code == 200
    row = page.text.split(f'data-run-id="{run.id}"')[1].split("</tr>")[0]
    assert f'href="/console/runs/{run.id}"' in row
    assert "orders.approval@1" in row
    assert "state-RUNNING" in row
    assert f"signal go (times out {when(run.created_at + 3600)})" in row


async def test_the_list_filters_by_workflow_and_state() -> None:
    async with console() as c:
        await c.login("read")
        waiting = await start(c)
        napping = await start(c, NAP)
        by_name = await c.http.get("/console/runs", params={"workflow": "nap"})
        by_state = await c.http.get("/console/runs", params={"state": ["SUCCEEDED", "FAILED"]})
        bad = await c.http.get("/console/runs", params={"state": "ASLEEP"})
    assert napping.id in by_name.text
    assert waiting.id not in by_name.text
    assert 'value="SUCCEEDED" checked' in by_state.text
    assert waiting.id not in by_state.text
    assert napping.id not in by_state.text
    assert "No runs match these filters" in by_state.text
    assert bad.status_code == 400


async def test_the_list_pages_with_the_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runs, "PAGE", 2)
    async with console() as c:
        await c.login("read")
        ids = set()
        for n in range(3):
            ids.add((await start(c, run_id=f"run-{n}")).id)
            await c.clock.advance(1)
        first = await c.http.get("/console/runs")
        found = re.search(r'href="([^"]+)" id="runs-next"', first.text)
        assert found
        second = await c.http.get(html.unescape(found.group(1)))
    shown = set(re.findall(r'data-run-id="([^"]+)"', first.text))
    rest = set(re.findall(r'data-run-id="([^"]+)"', second.text))
    assert len(shown) == 2
    assert len(rest) == 1
    assert shown | rest == ids
    assert 'id="runs-next"' not in second.text
    assert 'id="runs-first"' in second.text


async def test_a_runs_page_draws_its_steps_and_the_signal_it_waits_for() -> None:
    async with console() as c:
        await c.login("admin")
        run = await start(c)
        page = await c.http.get(f"/console/runs/{run.id}")
    assert page.status_code == 200
    graph = dag(page.text)
    assert graph["edges"] == [["wait", "pay"], ["pay", "ship"]]
    steps = nodes(page.text)
    assert {name: node["state"] for name, node in steps.items()} == {
        "wait": "ACTIVE",
        "pay": "PENDING",
        "ship": "PENDING",
    }
    deadline = when(run.created_at + 3600)
    assert steps["wait"]["detail"] == f"signal go (times out {deadline})"
    assert steps["ship"]["detail"] == 'step pay; condition {"path":"paid","op":"truthy"}'
    assert 'data-step="wait" data-state="ACTIVE"' in page.text  # the table under the graph
    assert 'id="run-live" data-live' in page.text
    assert 'id="signal-form"' in page.text
    assert '<option value="go">go</option>' in page.text
    assert 'id="cancel-run"' in page.text
    assert "&#34;order&#34;: 7" in page.text  # the input, pretty


async def test_a_signal_advances_the_run_and_links_the_next_steps_task() -> None:
    async with console() as c:
        await c.login("admin")
        run = await start(c)
        sent = await c.post(
            f"/console/runs/{run.id}/signal", {"name": "go", "payload": '{"paid": true}'}
        )
        assert sent.status_code == 303
        assert sent.headers["location"] == f"/console/runs/{run.id}?done=signalled"
        after = await stored(c, run.id)
        page = await c.http.get(sent.headers["location"])
    assert after.signals == {"go": {"paid": True}}
    assert after.steps["wait"].state is StepState.SUCCEEDED
    pay = after.steps["pay"]
    assert pay.state is StepState.ACTIVE
    assert pay.task_id
    assert "Signal sent." in page.text
    assert nodes(page.text)["pay"]["href"] == f"/console/tasks/{pay.task_id}"
    assert f'<a class="mono" href="/console/tasks/{pay.task_id}">' in page.text
    assert "signal-form" not in page.text  # its one signal was received


async def test_a_payload_that_is_not_json_changes_nothing() -> None:
    async with console() as c:
        await c.login("admin")
        run = await start(c)
        sent = await c.post(f"/console/runs/{run.id}/signal", {"name": "go", "payload": "{paid"})
        after = await stored(c, run.id)
    assert sent.status_code == 400
    assert "the signal payload is not valid JSON" in sent.text
    assert (after.signals, after.revision) == ({}, run.revision)


async def test_an_unknown_signal_is_refused() -> None:
    async with console() as c:
        await c.login("admin")
        run = await start(c)
        sent = await c.post(f"/console/runs/{run.id}/signal", {"name": "stop"})
        after = await stored(c, run.id)
    assert sent.status_code == 400
    assert "waits for no signal" in sent.text
    assert after.revision == run.revision


async def test_cancel_asks_first_then_cancels_the_run() -> None:
    async with console() as c:
        await c.login("admin")
        run = await start(c)
        ask = await c.http.get(f"/console/runs/{run.id}/cancel")
        before = await stored(c, run.id)
        done = await c.post(f"/console/runs/{run.id}/cancel")
        after = await stored(c, run.id)
        page = await c.http.get(done.headers["location"])
    assert 'id="cancel-form"' in ask.text
    assert before.state is RunState.RUNNING
    assert done.status_code == 303
    assert after.state is RunState.CANCELLED
    assert all(step.state is StepState.CANCELLED for step in after.steps.values())
    assert "Run cancelled." in page.text
    assert 'id="run-live">' in page.text  # finished: no more live updates
    assert "cancel-run" not in page.text
    assert "signal-form" not in page.text


async def test_a_read_token_sees_no_action_and_may_take_none() -> None:
    async with console() as c:
        await c.login("read")
        run = await start(c)
        page = await c.http.get(f"/console/runs/{run.id}")
        ask = await c.http.get(f"/console/runs/{run.id}/cancel")
        signalled = await c.post(f"/console/runs/{run.id}/signal", {"name": "go"})
        cancelled = await c.post(f"/console/runs/{run.id}/cancel")
        after = await stored(c, run.id)
    assert page.status_code == 200
    assert "signal-form" not in page.text
    assert "cancel-run" not in page.text
    assert (ask.status_code, signalled.status_code, cancelled.status_code) == (403, 403, 403)
    assert (after.state, after.signals, after.revision) == (RunState.RUNNING, {}, run.revision)


async def test_publish_on_the_runs_subjects_may_drive_it() -> None:
    async with console() as c:
        await c.login("orders")  # publish:orders.> covers orders.pay, refund and ship
        run = await start(c)
        page = await c.http.get(f"/console/runs/{run.id}")
        sent = await c.post(f"/console/runs/{run.id}/signal", {"name": "go"})
    assert "signal-form" in page.text
    assert "cancel-run" in page.text
    assert sent.status_code == 303


async def test_a_stale_csrf_value_is_refused() -> None:
    async with console() as c:
        await c.login("admin")
        run = await start(c)
        url = f"/console/runs/{run.id}/signal"
        sent = await c.http.post(url, data={"name": "go", "csrf": "x" * 43})
        cancelled = await c.http.post(f"/console/runs/{run.id}/cancel", data={"csrf": "stale"})
        after = await stored(c, run.id)
    assert (sent.status_code, cancelled.status_code) == (403, 403)
    assert (after.state, after.signals, after.revision) == (RunState.RUNNING, {}, run.revision)


async def test_a_sleep_step_shows_when_its_timer_fires() -> None:
    async with console() as c:
        await c.login("read")
        run = await start(c, NAP)
        page = await c.http.get(f"/console/runs/{run.id}")
    nap = nodes(page.text)["nap"]
    assert nap["detail"] == f"timer (1 m, fires {when(run.created_at + 60)})"
    assert nap["href"] == f"/console/tasks/{run.steps['nap'].task_id}"


async def test_compensation_is_shown_on_the_graph_and_in_the_table() -> None:
    async with console() as c:
        await c.login("read")
        await start(c)
        now = c.clock.now()
        failing = Run(
            id="failing",
            workflow="orders.approval",
            version=1,
            state=RunState.COMPENSATING,
            steps={
                "wait": StepRun(StepState.SUCCEEDED, finished_at=now),
                "pay": StepRun(
                    StepState.SUCCEEDED,
                    task_id="t-pay",
                    attempts=1,
                    compensation=StepState.ACTIVE,
                    compensation_task="t-refund",
                ),
                "ship": StepRun(StepState.FAILED, task_id="t-ship", error="no truck"),
            },
            error="step 'ship' failed: no truck",
            created_at=now,
            updated_at=now,
        )
        await workflow_store(c.platform).create_runs([failing])
        page = await c.http.get("/console/runs/failing")
        listed = await c.http.get("/console/runs")
    steps = nodes(page.text)
    assert steps["pay"]["mark"] == "compensation-ACTIVE"
    assert steps["pay"]["detail"] == "compensation task on orders.refund"
    assert steps["ship"]["state"] == "FAILED"
    assert steps["ship"]["detail"] == "no truck"
    assert ">compensating</span>" in page.text
    assert 'href="/console/tasks/t-refund"' in page.text
    assert "step &#39;ship&#39; failed: no truck" in page.text
    assert "state-COMPENSATING" in page.text
    row = listed.text.split('data-run-id="failing"')[1].split("</tr>")[0]
    assert "compensation task on orders.refund" in row


async def test_the_live_refresh_answers_with_the_fragment_alone() -> None:
    async with console() as c:
        await c.login("read")
        run = await start(c)
        part = await c.http.get(f"/console/runs/{run.id}", headers={"HX-Request": "true"})
        rows = await c.http.get("/console/runs", headers={"HX-Request": "true"})
    assert part.text.startswith('<div id="run-live" data-live')
    assert "<html" not in part.text
    assert "signal-form" not in part.text
    assert rows.text.startswith('<div id="runs-table" data-live')


async def test_an_unknown_run_is_a_404_page() -> None:
    async with console() as c:
        await c.login("read")
        page = await c.http.get("/console/runs/nope")
    assert page.status_code == 404
    assert "no workflow run with id" in page.text
