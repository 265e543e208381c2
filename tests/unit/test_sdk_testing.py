"""atp.sdk.testing: the in-memory platform on a ManualClock that users test their handlers with."""

import asyncio

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import BackendUnavailable
from atp.core.model import RetryPolicy, State
from atp.core.plugins import hookimpl
from atp.core.settings import Settings
from atp.core.workflows import RunState, StepState
from atp.sdk import App
from atp.sdk.testing import MAX_EVENTS, NotIdle, TestPlatform
from atp.sdk.workflow import Workflow

START = 1_750_000_000.0
DAY = 86_400.0


class CountingClock(ManualClock):
    """A ManualClock that counts how often the walk moves it: what a walk costs."""

    def __init__(self) -> None:
        super().__init__(start=START)
        self.jumps = 0

    async def jump(self, seconds: float) -> None:
        self.jumps += 1
        await super().jump(seconds)


@pytest.fixture
def app() -> App:
    app = App()

    @app.task("orders.close")
    async def close(order_id: int) -> int:
        return order_id

    @app.task("orders.hang", timeout=300)
    async def hang() -> None:
        await asyncio.Event().wait()

    @app.task("orders.flaky", max_attempts=5, retry=RetryPolicy(base=1, factor=2, cap=4))
    async def flaky() -> None:
        raise ValueError("flaky")

    return app


async def test_run_until_idle_runs_what_is_due_within_max_time(app):
    async with TestPlatform(app) as tp:
        soon = await tp.client.publish("orders.close", {"order_id": 1}, delay=20)
        later = await tp.client.publish("orders.close", {"order_id": 2}, delay=200)
        await tp.run_until_idle(max_time=60)
        assert (await tp.get(soon.id)).state is State.SUCCEEDED
        assert (await tp.get(later.id)).state is State.SCHEDULED
        assert tp.clock.now() - START < 21  # it stopped once idle, not at max_time
        await tp.run_until_idle(max_time=300)
        assert (await tp.get(later.id)).state is State.SUCCEEDED


async def test_run_until_idle_runs_retries_to_the_end(app):
    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.flaky")
        await tp.run_until_idle()
        (dead,) = await tp.dead_letters()
    assert dead.id == published.id
    assert dead.task.attempt == 5
    assert tp.clock.now() - START <= 1 + 2 + 4 + 4 + 5 * tp.settings.forward_interval


async def test_run_until_idle_raises_when_work_never_ends(app):
    async with TestPlatform(app) as tp:
        await tp.client.publish("orders.hang")
        with pytest.raises(NotIdle, match=r"1 RUNNING on 'orders\.hang'") as caught:
            await tp.run_until_idle(max_time=5)
        assert caught.value.active == {("orders.hang", State.RUNNING): 1}
        assert tp.clock.now() == pytest.approx(START + 5)


async def test_run_until_idle_fails_at_once_for_a_subject_no_worker_consumes(app):
    async with TestPlatform(app) as tp:
        await tp.client.publish("nobody.listens")
        with pytest.raises(NotIdle, match=r"READY on 'nobody\.listens', which no running worker"):
            await tp.run_until_idle()
        assert tp.clock.now() == START


async def test_wait_advances_until_the_task_is_final(app):
    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.close", {"order_id": 3}, delay=100)
        record = await tp.wait(published.id)
        assert (record.state, record.result) == (State.SUCCEEDED, 3)
        assert 100 <= tp.clock.now() - START <= 100 + tp.settings.forward_interval
        hanging = await tp.client.publish("orders.hang")
        with pytest.raises(TimeoutError, match="still RUNNING after 10s of clock time"):
            await tp.wait(hanging.id, max_time=10)


async def test_advance_moves_the_clock_exactly(app):
    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.close", {"order_id": 1}, delay=10)
        await tp.advance(8.5)  # before the forwarder's horizon: not even taken ahead
        assert tp.clock.now() == START + 8.5
        assert (await tp.get(published.id)).state is State.SCHEDULED
        await tp.advance(2)
        assert (await tp.get(published.id)).state is State.SUCCEEDED


async def test_tasks_and_dead_letters_list_everything(app):
    async with TestPlatform(app) as tp:
        ok = await tp.client.publish("orders.close", {"order_id": 1})
        bad = await tp.client.publish("orders.flaky", max_attempts=1)
        await tp.run_until_idle()
        assert [r.id for r in await tp.tasks()] == [bad.id, ok.id]
        assert [r.id for r in await tp.tasks(subject="orders.close")] == [ok.id]
        assert [r.id for r in await tp.tasks(states=["SUCCEEDED"])] == [ok.id]
        assert [r.id for r in await tp.dead_letters("orders.*")] == [bad.id]


async def test_settings_are_kept_but_the_backends_are_always_in_memory(app):
    settings = Settings(store="sqlite:///never.db", concurrency=3, max_attempts=9)
    async with TestPlatform(app, settings) as tp:
        assert (tp.settings.store, tp.settings.transport) == ("memory://", "memory://")
        assert tp.settings.coordinator == "memory://"
        assert (tp.settings.concurrency, tp.settings.max_attempts) == (3, 9)
        assert tp.platform.local
        assert tp.platform.clock is tp.clock
        assert tp.workers[0].worker.concurrency == 3


async def test_the_same_seed_gives_the_same_jitter(app):
    async def delays(seed: int) -> list[float]:
        async with TestPlatform(app, seed=seed) as tp:
            published = await tp.client.publish("orders.flaky")
            await tp.run_until_idle()
            record = await tp.get(published.id)
            return [b.at - a.at for a, b in zip(record.errors, record.errors[1:], strict=False)]

    first, again, other = await delays(1), await delays(1), await delays(2)
    assert first == again
    assert first != other


class Broken:
    """A coordinator that fails in a way no component expects."""

    async def acquire(self, name, owner, ttl):
        raise ValueError("coordinator bug")

    async def close(self) -> None: ...


async def test_a_background_runner_that_dies_is_reported(app):
    tp = TestPlatform(app, workers=0, scheduler=False)
    tp.platform.coordinator = Broken()  # type: ignore[assignment]
    async with tp:
        with pytest.raises(RuntimeError, match="test-scheduler-1 stopped with an error") as caught:
            await tp.start_scheduler()
        assert isinstance(caught.value.__cause__, ValueError)
        await tp.advance(1)  # reported once


async def test_a_worker_that_cannot_start_is_reported_at_once(app):
    async with TestPlatform(app, workers=0) as tp:
        with pytest.raises(RuntimeError, match="stopped with an error") as caught:
            await tp.start_worker(patterns=["orders..close"])
    assert "empty token" in str(caught.value.__cause__)


class Named:
    def __init__(self) -> None:
        self.started: list[str] = []

    @hookimpl
    def atp_worker_started(self, worker: str, patterns, group: str) -> None:
        self.started.append(worker)


async def test_plugins_are_registered_under_readable_names(app):
    plugin = Named()
    async with TestPlatform(app, plugins=[plugin, Named()]) as tp:
        names = {name for name, _ in tp.platform.plugins.list_name_plugin()}
        assert {"Named#1", "Named#2"} <= names
    assert plugin.started == ["test-worker-1"]


async def test_closing_drains_on_the_clock_and_leaves_nothing_running(app):
    tp = TestPlatform(app, Settings(drain_timeout=20))
    await tp.start()
    await tp.start()  # starting twice starts nothing more
    assert len(tp.workers) == 1
    assert len(tp.schedulers) == 1
    published = await tp.client.publish("orders.hang")
    await tp.advance(1)
    await tp.close()
    await tp.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert 20 <= tp.clock.now() - START <= 22
    assert not tp.workers[0].alive
    assert not tp.schedulers[0].alive
    record = await tp.platform.store.get([published.id])
    assert record[0] is not None
    assert record[0].errors[-1].kind == "shutdown"


async def test_a_failure_while_starting_still_closes_everything(app):
    tp = TestPlatform(app, Settings(subjects=("bad..pattern",)), scheduler=True)
    with pytest.raises(RuntimeError):
        async with tp:
            pass  # pragma: no cover
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert all(not s.alive for s in tp.schedulers)


async def test_crashed_and_stopped_runners_are_not_stopped_again(app):
    async with TestPlatform(app) as tp:
        await tp.workers[0].crash()
        await tp.schedulers[0].crash()
        second = await tp.start_scheduler()
        await second.stop()
        assert not tp.workers[0].alive
        assert not second.is_leader
        assert "alive=False" in repr(tp.workers[0])
        assert "leader=False" in repr(second)
        assert "workers=1" in repr(tp)


async def test_a_consumer_that_fails_to_close_does_not_stop_the_shutdown(app):
    class FailingClose:
        def __init__(self, inner) -> None:
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        async def consume(self, pattern, group):
            consumer = await self._inner.consume(pattern, group)
            return FailingConsumerClose(consumer)

    class FailingConsumerClose:
        def __init__(self, inner) -> None:
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        async def close(self) -> None:
            await self._inner.close()
            raise BackendUnavailable("close failed")

    tp = TestPlatform(app)
    tp.platform.transport = FailingClose(tp.platform.transport)  # type: ignore[assignment]
    async with tp:
        pass
    assert not tp.workers[0].alive  # the worker logs the failed close and stops anyway


async def test_days_of_delay_run_on_time_in_almost_no_real_time():
    app = App("long")

    @app.task("orders.close")
    async def close(order_id: int) -> int:
        return order_id

    async with TestPlatform(app) as tp:
        soon = await tp.client.publish("orders.close", {"order_id": 1}, delay="30m")
        later = await tp.client.publish("orders.close", {"order_id": 2}, delay="1d")
        await tp.run_until_idle(max_time=2 * 86400)
        records = [await tp.get(soon.id), await tp.get(later.id)]
        week = await tp.client.publish("orders.close", {"order_id": 3}, delay="6d")
        records.append(await tp.wait(week.id, max_time=7 * 86400))
    for record in records:
        assert record.state is State.SUCCEEDED
        assert record.finished_at is not None
        assert 0 <= record.finished_at - record.task.run_at < 1.0


# -- walking event to event ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_readme_snippet_runs_a_30_minute_delay_with_the_defaults():
    app = App("shop")

    @app.task("orders.close")
    async def close_order(order_id: int) -> None: ...

    clock = CountingClock()
    async with TestPlatform(app, clock=clock) as tp:
        task = await tp.client.publish("orders.close", {"order_id": 42}, delay="30m")
        await tp.run_until_idle()  # advances the clock through the delay
        record = await tp.get(task.id)
        assert record.state is State.SUCCEEDED
        assert record.finished_at is not None
        assert 0 <= record.finished_at - task.run_at < 1.0
    assert clock.jumps < 20  # one jump to the due time, a few moves while it runs


async def test_a_signal_wait_with_a_3_day_timeout_ends_by_the_timeout():
    app = App("approvals")
    wf = Workflow("expense.approve")
    wait = wf.wait_signal("manager.decision", after=wf.step("expense.check"), timeout="3d")
    wf.step("expense.pay", after=wait)
    app.workflow(wf)

    @app.task("expense.check")
    async def check(**step: object) -> str:
        return "checked"

    @app.task("expense.pay")
    async def pay(**step: object) -> None:  # pragma: no cover - the decision never comes
        raise AssertionError("paid without a decision")

    clock = CountingClock()
    async with TestPlatform(app, clock=clock) as tp:
        run = await tp.client.start_workflow("expense.approve", {"amount": 12})
        await tp.run_until_idle()
        run = await tp.client.get_run(run.id)
    assert run.state is RunState.FAILED
    assert run.steps["manager.decision"].state is StepState.FAILED
    assert "timed out" in (run.steps["manager.decision"].error or "")
    assert run.finished_at is not None
    assert 3 * DAY <= run.finished_at - START < 3 * DAY + 5
    assert clock.jumps < 100  # not one per second of the three days


async def test_three_days_with_a_5_minute_cron_fire_864_ticks_one_walk_step_each():
    app = App("reports")
    fired: list[float] = []

    @app.cron("*/5 * * * *", subject="cache.refresh")
    async def refresh() -> None:
        fired.append(clock.now())

    clock = CountingClock()
    async with TestPlatform(app, clock=clock) as tp:
        await tp.advance(3 * DAY)
        assert clock.now() == START + 3 * DAY
        assert len(await tp.tasks(subject="cache.refresh", states=["SUCCEEDED"])) == 864
    assert len(fired) == 864
    assert all(at % 300 < 1.0 for at in fired)  # each ran at its tick
    # Bounded by the events (864 ticks), far from one move per heartbeat (51,840) or per
    # forwarder look (5,184,000) of the three days.
    assert clock.jumps <= 10 * 864


async def test_three_quiet_days_are_a_few_moves_of_the_clock(app):
    clock = CountingClock()
    async with TestPlatform(app, clock=clock) as tp:
        await tp.advance(3 * DAY)
        assert clock.now() == START + 3 * DAY
        await tp.run_until_idle()  # nothing pending: returns at once
        assert clock.now() == START + 3 * DAY
    assert clock.jumps <= 2


class Leaders:
    def __init__(self) -> None:
        self.changes: list[str] = []

    @hookimpl
    def atp_leader_acquired(self, role: str, owner: str, token: int) -> None:
        self.changes.append(f"acquired {token}")

    @hookimpl
    def atp_leader_lost(self, role: str, owner: str) -> None:
        self.changes.append("lost")


async def test_a_quiet_day_keeps_the_same_leader(app):
    leaders = Leaders()
    async with TestPlatform(app, plugins=[leaders]) as tp:
        published = await tp.client.publish("orders.close", {"order_id": 1}, delay="12h")
        await tp.advance(DAY)
        assert (await tp.get(published.id)).state is State.SUCCEEDED
        assert tp.schedulers[0].is_leader
        assert leaders.changes == ["acquired 1"]  # its lease was carried over each jump


async def test_cron_alone_never_keeps_run_until_idle_busy():
    app = App("reports")

    @app.cron("*/5 * * * *", subject="cache.refresh")
    async def refresh() -> None: ...

    async with TestPlatform(app) as tp:
        await tp.run_until_idle()
        assert tp.clock.now() == START
        soon = await tp.client.publish("cache.refresh", delay="12m")
        await tp.run_until_idle()  # the ticks at :05 and :10 on the way fire
        assert (await tp.get(soon.id)).state is State.SUCCEEDED
        assert len(await tp.tasks(subject="cache.refresh")) == 3
        assert tp.clock.now() - START < 12 * 60 + 1


async def test_wait_has_no_600_second_trap(app):
    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.close", {"order_id": 7}, delay="2d")
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert record.finished_at is not None
    assert 0 <= record.finished_at - published.run_at < 1.0


async def test_a_hanging_handler_costs_the_workers_wake_ups_not_the_schedulers_polls(app):
    clock = CountingClock()
    async with TestPlatform(app, clock=clock) as tp:
        published = await tp.client.publish("orders.hang", max_attempts=1)
        record = await tp.wait(published.id)
    assert record.state is State.DEAD
    assert record.errors[-1].kind == "timeout"
    assert record.finished_at is not None
    assert 300 <= record.finished_at - START < 301
    # The worker's fetch loops wake every second; the forwarder's looks (every 0.05 s,
    # 6,000 in 300 s) are not moves of their own.
    assert clock.jumps < 400


async def test_a_handler_that_publishes_itself_for_ever_is_reported():
    app = App("loop")

    @app.task("loop.again")
    async def again() -> None:
        await tp.client.publish("loop.again")

    async with TestPlatform(app) as tp:
        await tp.client.publish("loop.again")
        with pytest.raises(NotIdle, match=f"still not idle after {MAX_EVENTS} events") as caught:
            await tp.run_until_idle()
        assert "publishes new work each time it runs" in str(caught.value)
        assert "tasks created meanwhile" in str(caught.value)
        with pytest.raises(NotIdle, match="after 50 events"):
            await tp.wait((await tp.client.publish("loop.again", delay=3600)).id, max_events=50)


async def test_work_due_that_no_scheduler_handles_is_reported_not_walked_for_ever(app):
    clock = CountingClock()
    async with TestPlatform(app, scheduler=False, clock=clock) as tp:
        published = await tp.client.publish("orders.close", {"order_id": 1}, delay=60)
        with pytest.raises(NotIdle, match="is a scheduler running and leading") as caught:
            await tp.run_until_idle()
        assert caught.value.active == {("orders.close", State.SCHEDULED): 1}
        late = tp.clock.now() - published.run_at
        assert 3 * tp.settings.leader_ttl <= late < 3 * tp.settings.leader_ttl + 2
        with pytest.raises(NotIdle, match="schedulers: none"):
            await tp.wait(published.id)
        before, moves = tp.clock.now(), clock.jumps
        await tp.advance(DAY)  # advancing walks on past what nothing handles
        assert tp.clock.now() == before + DAY
        assert clock.jumps - moves <= 2
        assert (await tp.get(published.id)).state is State.SCHEDULED


async def test_a_dead_workers_lease_is_a_deadline_the_walk_jumps_to(app):
    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.hang")
        await tp.advance(1)
        await tp.workers[0].crash()
        await tp.start_worker()
        with pytest.raises(NotIdle, match=r"1 RUNNING on 'orders\.hang'"):
            await tp.run_until_idle(max_time=tp.settings.lease)
        record = await tp.get(published.id)
        assert record.state is State.RUNNING
        assert record.lease_owner == "test-worker-2"  # recovered and run again


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda tp: tp.advance(-1), "seconds must be a number of seconds >= 0, got -1"),
        (lambda tp: tp.run_until_idle(max_time=float("nan")), "max_time must be"),
        (lambda tp: tp.run_until_idle(max_events=0), "max_events must be a whole number"),
        (lambda tp: tp.wait("x", max_events=True), "max_events must be a whole number"),
    ],
)
async def test_bad_walk_arguments_are_refused_and_move_nothing(app, call, message):
    async with TestPlatform(app) as tp:
        with pytest.raises(ValueError, match=message):
            await call(tp)
        assert tp.clock.now() == START
