"""Workflows on the ManualClock: every shape, signals, timers, conditions, sagas, cancel.

Each test runs a real worker and scheduler (``TestPlatform``) on ``memory://``; the
clock only moves when the test moves it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from atp.core.errors import AlreadyExists, Fail, InvalidInput, NotFound, StateConflict
from atp.core.model import State
from atp.core.plugins import hookimpl
from atp.core.ports import Outcome
from atp.core.settings import Settings
from atp.core.workflows import RunState, StepState
from atp.core.workflows.engine import StepListener, WorkflowEngine
from atp.core.workflows.planner import RECHECK
from atp.core.workflows.runs import Run
from atp.sdk import SyncClient
from atp.sdk.app import App
from atp.sdk.testing import TestPlatform
from atp.sdk.workflow import Workflow

SETTINGS = Settings(forward_interval=0.5, retry_base=1.0, retry_cap=5.0)


class Recorder:
    """An app whose handlers record their calls and echo what they were given."""

    def __init__(self) -> None:
        self.app = App("wf")
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []
        self.payloads: dict[str, Any] = {}
        self.fail: dict[str, int] = {}
        """subject -> how many first attempts fail (a large number: always)."""

    def handle(self, *subjects: str) -> None:
        for subject in subjects:
            self._register(subject)

    def _register(self, subject: str) -> None:
        async def handler(payload: Any) -> Any:
            self.calls[subject] += 1
            self.order.append(subject)
            self.payloads[subject] = payload
            if self.fail.get(subject, 0) >= self.calls[subject]:
                raise RuntimeError(f"{subject} failed")
            return {"step": subject, "n": self.calls[subject]}

        self.app.task(subject, retries=2)(handler)


async def finish(tp: TestPlatform, run: Run, max_time: float = 600.0) -> Run:
    """Advance the clock until the run is over; return it."""
    deadline = tp.clock.now() + max_time
    while tp.clock.now() < deadline:
        await tp.run_until_idle(max_time=max_time)
        current = await tp.client.get_run(run.id)
        if current.finished:
            return current
        await tp.advance(1.0)
    raise AssertionError(f"run {run.id} not finished: {await tp.client.get_run(run.id)}")


def states(run: Run) -> dict[str, StepState]:
    return {name: step.state for name, step in run.steps.items()}


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


async def test_a_chain_runs_in_order_and_passes_results_down(rec: Recorder) -> None:
    rec.handle("a.one", "a.two", "a.three")
    wf = Workflow("chain")
    one = wf.step("a.one")
    two = wf.step("a.two", after=one)
    wf.step("a.three", after=two)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await finish(tp, await tp.client.start_workflow("chain", {"user": 7}))
    assert run.state is RunState.SUCCEEDED
    assert rec.order == ["a.one", "a.two", "a.three"]
    assert rec.payloads["a.one"] == {"input": {"user": 7}, "parents": {}}
    assert rec.payloads["a.three"]["parents"] == {"a.two": {"step": "a.two", "n": 1}}
    assert run.result == {"a.three": {"step": "a.three", "n": 1}}
    assert all(s.finished_at is not None and s.started_at is not None for s in run.steps.values())


async def test_fan_out_then_fan_in_waits_for_every_parent(rec: Recorder) -> None:
    rec.handle("etl.extract", "etl.load", "etl.report")
    wf = Workflow("etl")
    extract = wf.step("etl.extract")
    loads = [wf.step("etl.load", name=f"load-{i}", after=extract) for i in range(10)]
    wf.step("etl.report", after=loads)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await finish(tp, await tp.client.start_workflow("etl"))
        tasks = await tp.tasks()
    assert run.state is RunState.SUCCEEDED
    assert rec.calls == Counter({"etl.extract": 1, "etl.load": 10, "etl.report": 1})
    assert rec.order[-1] == "etl.report"
    assert sorted(rec.payloads["etl.report"]["parents"]) == sorted(loads)
    assert len(tasks) == 12
    assert {t.state for t in tasks} == {State.SUCCEEDED}
    assert {(t.task.workflow_run, t.task.step) for t in tasks} == {
        (run.id, name) for name in run.steps
    }


async def test_a_diamond_runs_the_join_once(rec: Recorder) -> None:
    rec.handle("d.top", "d.left", "d.right", "d.bottom")
    wf = Workflow("diamond")
    top = wf.step("d.top")
    left, right = wf.step("d.left", after=top), wf.step("d.right", after=top)
    wf.step("d.bottom", after=[left, right])
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS, workers=2) as tp:
        run = await finish(tp, await tp.client.start_workflow("diamond"))
    assert run.state is RunState.SUCCEEDED
    assert rec.calls["d.bottom"] == 1
    assert set(rec.payloads["d.bottom"]["parents"]) == {"d.left", "d.right"}


async def test_a_step_retries_then_succeeds_and_reports_its_attempts(rec: Recorder) -> None:
    rec.handle("r.flaky", "r.after")
    rec.fail["r.flaky"] = 2
    wf = Workflow("retrying")
    wf.step("r.after", after=wf.step("r.flaky", retries=3))
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await finish(tp, await tp.client.start_workflow("retrying"))
    assert run.state is RunState.SUCCEEDED
    assert run.steps["r.flaky"].attempts == 3
    assert rec.calls == Counter({"r.flaky": 3, "r.after": 1})


async def test_a_signal_resumes_the_run_and_a_condition_picks_the_branch(rec: Recorder) -> None:
    rec.handle("expense.check", "expense.pay", "expense.reject")
    wf = Workflow("expense.approve")
    wait = wf.wait_signal("manager.decision", after=wf.step("expense.check"), timeout="3d")
    wf.step("expense.pay", after=wait, when=lambda d: d["approved"])
    wf.step("expense.reject", after=wait, when=lambda d: d["approved"] == False)  # noqa: E712
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await tp.client.start_workflow("expense.approve", {"amount": 12})
        await tp.run_until_idle(max_time=60)
        waiting = await tp.client.get_run(run.id)
        assert waiting.steps["manager.decision"].state is StepState.ACTIVE
        await tp.clock.jump(3600)  # an hour passes with nothing due
        await tp.client.signal(run.id, "manager.decision", {"approved": True})
        run = await finish(tp, run)
        with pytest.raises(StateConflict):
            await tp.client.signal(run.id, "manager.decision", {"approved": True})
    assert run.state is RunState.SUCCEEDED
    assert states(run)["expense.pay"] is StepState.SUCCEEDED
    assert states(run)["expense.reject"] is StepState.SKIPPED
    assert rec.payloads["expense.pay"]["parents"] == {"manager.decision": {"approved": True}}


async def test_a_signal_sent_before_its_step_waits_is_kept(rec: Recorder) -> None:
    rec.handle("s.first", "s.then")
    wf = Workflow("early")
    wait = wf.wait_signal("go", after=wf.step("s.first"))
    wf.step("s.then", after=wait)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS, workers=0) as tp:
        run = await tp.client.start_workflow("early")
        await tp.client.signal(run.id, "go", 1)
        with pytest.raises(InvalidInput, match="no signal 'stop'"):
            await tp.client.signal(run.id, "stop")
        await tp.start_worker()
        run = await finish(tp, run)
    assert run.state is RunState.SUCCEEDED
    assert run.steps["go"].result == 1


async def test_a_signal_timeout_fails_the_run_and_compensates(rec: Recorder) -> None:
    rec.handle("t.reserve", "t.release", "t.pay")
    wf = Workflow("timeout")
    reserve = wf.step("t.reserve", compensate="t.release")
    wf.step("t.pay", after=wf.wait_signal("approval", after=reserve, timeout=timedelta(hours=2)))
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await tp.client.start_workflow("timeout")
        await tp.run_until_idle(max_time=60)
        await tp.clock.jump(7000)  # nothing is due meanwhile
        await tp.advance(5)
        assert not (await tp.client.get_run(run.id)).finished
        await tp.clock.jump(200)
        await tp.advance(5)
        run = await finish(tp, run)
    assert run.state is RunState.FAILED
    assert run.steps["approval"].state is StepState.FAILED
    assert "timed out" in (run.steps["approval"].error or "")
    assert run.steps["t.pay"].state is StepState.CANCELLED
    assert run.steps["t.reserve"].compensation is StepState.SUCCEEDED
    assert rec.calls == Counter({"t.reserve": 1, "t.release": 1})
    assert rec.payloads["t.release"]["result"] == {"step": "t.reserve", "n": 1}


async def test_a_sleep_step_waits_on_the_delay_queue(rec: Recorder) -> None:
    rec.handle("z.before", "z.after")
    wf = Workflow("sleepy")
    nap = wf.sleep("30m", after=wf.step("z.before"), name="nap")
    wf.step("z.after", after=nap)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        start = tp.clock.now()
        run = await tp.client.start_workflow("sleepy")
        await tp.run_until_idle(max_time=60)
        assert rec.calls["z.after"] == 0
        timer = await tp.get((await tp.client.get_run(run.id)).steps["nap"].task_id or "")
        assert timer.state is State.SCHEDULED
        assert timer.task.run_at >= start + 1800
        run = await finish(tp, run, max_time=3600)
        after = await tp.get(run.steps["z.after"].task_id or "")
    assert run.state is RunState.SUCCEEDED
    assert after.task.created_at >= start + 1800


async def test_a_false_condition_skips_the_step_and_everything_below(rec: Recorder) -> None:
    rec.handle("c.score", "c.bonus", "c.mail", "c.always")
    wf = Workflow("conditional")
    score = wf.step("c.score")
    bonus = wf.step("c.bonus", after=score, when={"path": "n", "op": "gt", "value": 5})
    wf.step("c.mail", after=bonus)
    wf.step("c.always", after=score, when=lambda d: d["step"] == "c.score")
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await finish(tp, await tp.client.start_workflow("conditional"))
    assert run.state is RunState.SUCCEEDED
    assert states(run) == {
        "c.score": StepState.SUCCEEDED,
        "c.bonus": StepState.SKIPPED,
        "c.mail": StepState.SKIPPED,
        "c.always": StepState.SUCCEEDED,
    }
    assert "c.bonus" not in rec.calls
    assert "c.mail" not in rec.calls


async def test_a_dead_step_compensates_the_succeeded_ones_newest_first(rec: Recorder) -> None:
    rec.handle("saga.a", "saga.b", "saga.c", "saga.undo-a", "saga.undo-b", "saga.never")
    rec.fail["saga.c"] = 99
    rec.fail["saga.undo-b"] = 1  # a compensation is a retried task too
    wf = Workflow("saga")
    a = wf.step("saga.a", compensate="saga.undo-a")
    b = wf.step("saga.b", after=a, compensate="saga.undo-b")
    c = wf.step("saga.c", after=b, retries=1)
    wf.step("saga.never", after=c)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await finish(tp, await tp.client.start_workflow("saga"))
        dead = await tp.dead_letters()
    assert run.state is RunState.FAILED
    assert "saga.c" in (run.error or "")
    assert states(run)["saga.c"] is StepState.FAILED
    assert states(run)["saga.never"] is StepState.CANCELLED
    assert rec.order[-3:] == ["saga.undo-b", "saga.undo-b", "saga.undo-a"]
    assert run.steps["saga.a"].compensation is StepState.SUCCEEDED
    assert run.steps["saga.b"].compensation is StepState.SUCCEEDED
    assert [r.subject for r in dead] == ["saga.c"]


async def test_fail_in_a_handler_fails_the_step_at_once(rec: Recorder) -> None:
    async def refuse(input: Any, parents: dict[str, Any]) -> None:
        raise Fail("card declined")

    rec.app.task("f.charge", retries=5)(refuse)
    wf = Workflow("failing")
    wf.step("f.charge")
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await finish(tp, await tp.client.start_workflow("failing"))
    assert run.state is RunState.FAILED
    assert run.steps["f.charge"].error == "card declined"
    assert run.steps["f.charge"].attempts == 1


async def test_cancel_cancels_pending_steps_and_their_tasks(rec: Recorder) -> None:
    rec.handle("k.first", "k.second")
    wf = Workflow("cancellable")
    nap = wf.sleep("1h", after=wf.step("k.first"), name="nap")
    wf.step("k.second", after=nap)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS) as tp:
        run = await tp.client.start_workflow("cancellable")
        await tp.run_until_idle(max_time=60)
        cancelled = await tp.client.cancel_run(run.id)
        assert (await tp.client.cancel_run(run.id)).state is RunState.CANCELLED  # no-op
        timer = await tp.get(cancelled.steps["nap"].task_id or "")
        await tp.run_until_idle(max_time=7200)
        with pytest.raises(StateConflict):
            await tp.client.signal(run.id, "anything")
    assert cancelled.state is RunState.CANCELLED
    assert states(cancelled) == {
        "k.first": StepState.SUCCEEDED,
        "nap": StepState.CANCELLED,
        "k.second": StepState.CANCELLED,
    }
    assert timer.state is State.CANCELLED
    assert rec.calls["k.second"] == 0


async def test_a_run_keeps_the_version_it_started_with(rec: Recorder) -> None:
    rec.handle("v.one", "v.two", "v.new")
    first = Workflow("versioned", version=1)
    first.step("v.two", after=first.step("v.one"))
    second = Workflow("versioned", version=2)
    second.step("v.new")
    rec.app.workflow(first)
    async with TestPlatform(rec.app, SETTINGS, workers=0) as tp:
        old = await tp.client.start_workflow("versioned")
        assert await tp.client.register_workflow(second) == [True]
        assert await tp.client.register_workflow(second.to_json()) == [False]
        new = await tp.client.start_workflow("versioned")
        pinned = await tp.client.start_workflow("versioned", version=1)
        changed = Workflow("versioned", version=2)
        changed.step("v.one")
        with pytest.raises(AlreadyExists, match="new version"):
            await tp.client.register_workflow(changed)
        await tp.start_worker()
        old, new, pinned = [await finish(tp, r) for r in (old, new, pinned)]
    assert (old.version, new.version, pinned.version) == (1, 2, 1)
    assert set(old.steps) == set(pinned.steps) == {"v.one", "v.two"}
    assert set(new.steps) == {"v.new"}
    assert {r.state for r in (old, new, pinned)} == {RunState.SUCCEEDED}


async def test_unknown_workflows_runs_and_oversized_inputs_are_refused(rec: Recorder) -> None:
    rec.handle("o.step", "o.next")
    wf = Workflow("sizes")
    wf.step("o.next", after=wf.step("o.step"))
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS.replace(max_payload=1000)) as tp:
        with pytest.raises(NotFound):
            await tp.client.start_workflow("nope")
        with pytest.raises(NotFound):
            await tp.client.get_run("nope")
        with pytest.raises(InvalidInput, match="limit"):
            await tp.client.start_workflow("sizes", "x" * 2000)
        assert (await tp.client.list_runs()).items == []
        run = await finish(tp, await tp.client.start_workflow("sizes", "x" * 950))
    assert run.state is RunState.FAILED
    assert "payload limit" in (run.steps["o.next"].error or "")


async def test_racing_advances_enqueue_each_step_once(rec: Recorder) -> None:
    rec.handle("race.root", "race.leaf")
    wf = Workflow("race")
    root = wf.step("race.root")
    for i in range(5):
        wf.step("race.leaf", name=f"leaf-{i}", after=root)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS, workers=0) as tp:
        run = await tp.client.start_workflow("race")
        await finish_outside_a_worker(tp, run, "race.root")
        store = YieldingStore(tp.platform.store)
        engines = [WorkflowEngine(dataclasses.replace(tp.platform, store=store)) for _ in range(4)]
        advanced = await asyncio.gather(*(e.advance(run.id) for e in engines for _ in range(3)))
        leaves = await tp.tasks(subject="race.leaf")
    assert store.lost_writes > 0, "the advances did not race: the test proves nothing"
    assert len(leaves) == 5
    assert {r.task.step for r in leaves} == {f"leaf-{i}" for i in range(5)}
    ids = {a.steps[f"leaf-{i}"].task_id for a in advanced for i in range(5)}
    assert ids == {r.id for r in leaves}


async def test_the_sweep_advances_a_run_whose_worker_died_after_finishing(rec: Recorder) -> None:
    rec.handle("lost.first", "lost.second")
    wf = Workflow("lost")
    wf.step("lost.second", after=wf.step("lost.first"))
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS, workers=0) as tp:
        run = await tp.client.start_workflow("lost")
        await finish_outside_a_worker(tp, run, "lost.first")
        assert (await tp.client.get_run(run.id)).steps["lost.second"].state is StepState.PENDING
        await tp.advance(RECHECK + 2)  # the scheduler's sweep notices the finished step
        run = await tp.client.get_run(run.id)
        assert run.steps["lost.first"].state is StepState.SUCCEEDED
        assert run.steps["lost.second"].state is StepState.ACTIVE
        await tp.start_worker()
        run = await finish(tp, run)
    assert run.state is RunState.SUCCEEDED


class YieldingStore:
    """A store that lets other coroutines run before each call, so advances interleave."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.lost_writes = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            result = await method(*args, **kwargs)
            if name == "update_runs":
                self.lost_writes += result.count(False)
            return result

        return call


async def finish_outside_a_worker(tp: TestPlatform, run: Run, step: str) -> None:
    """Run a step's task to success through the store alone, as a worker that then died
    would leave it: succeeded, and the run not advanced."""
    task_id = (await tp.client.get_run(run.id)).steps[step].task_id
    assert task_id is not None
    now = tp.clock.now()
    store = tp.platform.store
    claims = await store.claim([task_id], owner="ghost", now=now, lease_until=now + 30)
    assert claims[0].claimed
    outcome = Outcome(task_id, "ghost", State.SUCCEEDED, now, result={"from": "ghost"})
    assert await store.finish([outcome]) == [True]


async def test_a_sleep_longer_than_max_delay_fails_its_step(rec: Recorder) -> None:
    wf = Workflow("too.long")
    wf.sleep("2h", name="nap")
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS.replace(max_delay=3600)) as tp:
        run = await finish(tp, await tp.client.start_workflow("too.long"))
    assert run.state is RunState.FAILED
    assert "max_delay" in (run.steps["nap"].error or "")


class Hooks:
    """A plugin recording the workflow lifecycle hooks."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    @hookimpl
    def atp_workflow_run_started(self, run_id: str, workflow: str) -> None:
        self.events.append(("started", workflow))

    @hookimpl
    def atp_workflow_step_finished(self, run_id: str, step: str, state: str) -> None:
        self.events.append(("step", step, state))

    @hookimpl
    def atp_workflow_run_finished(self, run_id: str, workflow: str, state: str) -> None:
        self.events.append(("finished", workflow, state))


async def test_lifecycle_hooks_fire_once_each(rec: Recorder) -> None:
    rec.handle("h.one", "h.two")
    wf = Workflow("hooked")
    one = wf.step("h.one")
    wf.step("h.two", after=one, when=lambda d: d["n"] > 5)
    rec.app.workflow(wf)
    hooks = Hooks()
    async with TestPlatform(rec.app, SETTINGS, plugins=[hooks]) as tp:
        await finish(tp, await tp.client.start_workflow("hooked"))
    assert hooks.events == [
        ("started", "hooked"),
        ("step", "h.one", "SUCCEEDED"),
        ("step", "h.two", "SKIPPED"),
        ("finished", "hooked", "SUCCEEDED"),
    ]


def test_the_sync_client_runs_a_workflow_end_to_end(tmp_path: Path) -> None:
    wf = Workflow("sync.demo")
    wf.wait_signal("go")
    with SyncClient.connect(f"sqlite:///{tmp_path / 'atp.db'}") as client:
        assert client.register_workflow(wf) == [True]
        run = client.start_workflow("sync.demo", {"x": 1})
        assert client.signal(run.id, "go", 2).state is RunState.SUCCEEDED
        assert client.get_run(run.id).steps["go"].result == 2
        assert [r.id for r in client.list_runs(workflow="sync.demo").items] == [run.id]


async def test_a_worker_coalesces_the_advances_of_one_run(rec: Recorder) -> None:
    rec.handle("co.root", "co.part")
    wf = Workflow("coalesced")
    root = wf.step("co.root")
    for i in range(10):
        wf.step("co.part", name=f"part-{i}", after=root)
    rec.app.workflow(wf)
    async with TestPlatform(rec.app, SETTINGS, workers=0) as tp:
        run = await tp.client.start_workflow("coalesced")
        await finish_outside_a_worker(tp, run, "co.root")
        store = YieldingStore(tp.platform.store)
        listener = StepListener(dataclasses.replace(tp.platform, store=store))
        root_task = await tp.get((await tp.client.get_run(run.id)).steps["co.root"].task_id or "")
        await asyncio.gather(*(listener.finished(root_task.task) for _ in range(10)))
        run = await tp.client.get_run(run.id)
    assert store.lost_writes == 0
    assert {run.steps[f"part-{i}"].state for i in range(10)} == {StepState.ACTIVE}
