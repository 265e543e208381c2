"""Workflows under real ``atp dev`` processes on a SQLite file: retries, fan-out, SIGKILL.

The app is ``workflow_app.py``; each step appends to a ledger file. Runs are started from
this process through the SDK Client on the same file. Every wait is bounded and polls.
"""

# ruff: noqa: F811  (the fixtures of test_dev_process, imported, are parameters here)
from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from test_dev_process import (  # noqa: F401  (fixtures)
    DevProcess,
    client,
    env,
    eventually,
    processes,
    wait_leader,
)

from atp.core.model import State
from atp.core.ports import TaskQuery
from atp.core.workflows import Run, RunState, StepState
from atp.sdk.client import Client

pytestmark = pytest.mark.e2e
APP = "workflow_app:app"


@pytest.fixture(autouse=True)
def wide_worker(env: dict[str, str]) -> None:
    """More handler slots than the app has subject patterns: a worker's idle fetch loops
    each hold a slot while they wait, so 8 slots and 9 patterns would starve the rest."""
    env["ATP_CONCURRENCY"] = "24"


def ledger(path: Path, run_id: str, what: str = "done") -> Counter[str]:
    """How often each step of ``run_id`` recorded ``what``."""
    if not path.exists():
        return Counter()
    lines = (line.split() for line in path.read_text().splitlines())
    return Counter(step for step, run, kind, _ in lines if run == run_id and kind == what)


async def finished_run(client: Client, run_id: str, *alive: DevProcess) -> Run:
    async def done() -> Run | None:
        run = await client.get_run(run_id)
        return run if run.finished else None

    return await eventually(done, 60, f"run {run_id} finished", *alive)


async def step_tasks(client: Client, run_id: str) -> Counter[str]:
    """How many tasks each step of the run has, succeeded ones only."""
    page = await client.platform.store.query(TaskQuery(limit=1000))
    return Counter(
        r.task.step or ""
        for r in page.items
        if r.task.workflow_run == run_id and r.state is State.SUCCEEDED
    )


async def test_signup_step_that_fails_twice_then_succeeds(
    client: Client, processes: Callable[[str], DevProcess], tmp_path: Path
) -> None:
    dev = processes("dev").start(APP)
    await wait_leader(client.platform, dev)
    run = await client.start_workflow("user.signup", {"email": "a@b.c"})
    run = await finished_run(client, run.id, dev)
    assert run.state is RunState.SUCCEEDED, run
    assert run.steps["crm.sync"].attempts == 3
    assert {s.state for s in run.steps.values()} == {StepState.SUCCEEDED}
    assert ledger(tmp_path / "ledger.txt", run.id, "attempt") == Counter({"crm.sync": 2})
    assert ledger(tmp_path / "ledger.txt", run.id) == Counter(dict.fromkeys(run.steps, 1))
    dev.signal(signal.SIGTERM)
    assert dev.wait(15) == 0


async def test_etl_fan_out_survives_sigkill_with_each_step_once(
    client: Client, processes: Callable[[str], DevProcess], tmp_path: Path
) -> None:
    path = tmp_path / "ledger.txt"
    first = processes("first").start(APP)
    await wait_leader(client.platform, first)
    run = await client.start_workflow("etl.daily", {"day": "2026-11-30"})

    async def some_ran() -> bool:
        return sum(ledger(path, run.id).values()) >= 30

    await eventually(some_ran, 30, "30 ETL steps before the first kill", first)
    first.signal(signal.SIGKILL)
    first.wait(10)
    done_at_kill = sum(ledger(path, run.id).values())
    assert done_at_kill < len(run.steps), "the run finished before the kill: proves nothing"

    second = processes("second").start(APP)

    async def more_ran() -> bool:
        return sum(ledger(path, run.id).values()) >= done_at_kill + 20

    await eventually(more_ran, 30, "20 more ETL steps before the second kill", second)
    second.signal(signal.SIGKILL)
    second.wait(10)

    third = processes("third").start(APP)
    run = await finished_run(client, run.id, third)
    assert run.state is RunState.SUCCEEDED, run
    assert {s.state for s in run.steps.values()} == {StepState.SUCCEEDED}
    assert await step_tasks(client, run.id) == Counter(dict.fromkeys(run.steps, 1))
    ran = ledger(path, run.id)
    assert set(ran) == set(run.steps), "some step never ran"
    assert ran["etl.load"] == 1
    assert ran["etl.extract"] == 1
    duplicates = sum(n - 1 for n in ran.values())
    print(f"\n{duplicates} step executions repeated after a SIGKILL (at-least-once)")
    assert duplicates <= 48, "more repeats than two kills of 24 running handlers explain"
    third.signal(signal.SIGTERM)
    assert third.wait(15) == 0
