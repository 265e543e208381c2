"""atp.sdk.testing: the in-memory platform on a ManualClock that users test their handlers with."""

import asyncio

import pytest

from atp.core.errors import BackendUnavailable
from atp.core.model import RetryPolicy, State
from atp.core.plugins import hookimpl
from atp.core.settings import Settings
from atp.sdk import App
from atp.sdk.testing import NotIdle, TestPlatform

START = 1_750_000_000.0


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
