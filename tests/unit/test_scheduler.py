"""The scheduler runtime: forwarder, reaper, pruner, elector and leadership, on the ManualClock."""

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence

import pytest

from atp.core.clock import ManualClock
from atp.core.context import current_task
from atp.core.errors import BackendUnavailable, ConfigError, FencedOut
from atp.core.model import State, Task, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import hookimpl
from atp.core.ports import Fence
from atp.core.scheduler.component import Component, Leadership, NotLeading
from atp.core.scheduler.elector import Elector
from atp.core.scheduler.forwarder import HELD_BATCHES
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.sdk import App
from atp.sdk.testing import TestPlatform

MEMORY = {"store": "memory://", "transport": "memory://", "coordinator": "memory://"}


class Events:
    """Records the scheduler's hooks."""

    def __init__(self) -> None:
        self.dispatched: Counter[str] = Counter()
        self.leaders: list[tuple[str, str, int | None]] = []
        self.recovered: list[TaskRecord] = []
        self.dead: list[tuple[str, str]] = []

    @hookimpl
    def atp_task_dispatched(self, tasks: Sequence[Task]) -> None:
        self.dispatched.update(task.id for task in tasks)

    @hookimpl
    def atp_leader_acquired(self, role: str, owner: str, token: int) -> None:
        self.leaders.append(("acquired", owner, token))

    @hookimpl
    def atp_leader_lost(self, role: str, owner: str) -> None:
        self.leaders.append(("lost", owner, None))

    @hookimpl
    def atp_task_recovered(self, records: Sequence[TaskRecord]) -> None:
        self.recovered.extend(records)

    @hookimpl
    def atp_task_dead(self, record: TaskRecord, reason: str) -> None:
        self.dead.append((record.id, reason))


def counting_app() -> tuple[App, Counter[str]]:
    """An app whose handler for ``jobs.*`` counts its runs per task id."""
    app = App()
    runs: Counter[str] = Counter()

    @app.task("jobs.*")
    async def job() -> None:
        runs[current_task().id] += 1

    return app, runs


# -- the forwarder ------------------------------------------------------------------------


async def test_a_delayed_task_is_forwarded_when_due_and_not_before():
    app, runs = counting_app()
    async with TestPlatform(app, Settings(forward_horizon=0)) as tp:
        published = await tp.client.publish("jobs.later", delay=10)
        assert published.run_at == tp.clock.now() + 10
        await tp.advance(9.9)
        assert (await tp.get(published.id)).state is State.SCHEDULED
        await tp.advance(0.2)
        assert (await tp.get(published.id)).state is State.SUCCEEDED
    assert runs[published.id] == 1


def timed_app() -> tuple[App, ManualClock, list[float]]:
    """An app whose ``timed.*`` handler records when, on the returned clock, it starts."""
    app, clock = App(), ManualClock()
    starts: list[float] = []

    @app.task("timed.*")
    async def timed() -> None:
        starts.append(clock.now())

    return app, clock, starts


def durable(tp: TestPlatform) -> None:
    """Make the memory transport say it is durable, as Redis Streams and JetStream are:
    the forwarder then takes tasks ahead. Before the scheduler starts (it reads it then)."""
    transport = tp.platform.transport
    transport.capabilities = dataclasses.replace(transport.capabilities, durable=True)


async def ahead(app: App, settings: Settings, **options) -> TestPlatform:
    """A started TestPlatform whose forwarder takes tasks ahead of their due time."""
    tp = TestPlatform(app, settings, scheduler=False, **options)
    await tp.start()
    durable(tp)
    await tp.start_scheduler()
    return tp


async def test_a_task_taken_ahead_starts_at_its_due_time_not_a_look_later():
    app, clock, starts = timed_app()
    settings = Settings(forward_horizon=2, forward_interval=0.5)
    async with await ahead(app, settings, clock=clock) as tp:
        published = await tp.client.publish("timed.one", delay=10.3)
        await tp.advance(8.0)
        assert (await tp.get(published.id)).state is State.SCHEDULED
        await tp.advance(0.5)  # the look at 8.5 takes it: due within the 2 s horizon
        assert (await tp.get(published.id)).state is State.READY
        await tp.advance(10.3 - 8.5 - 0.001)
        assert starts == []  # held, not published before its run_at
        await tp.advance(0.002)
        assert starts == [published.run_at]  # not at the next look (10.5)
        assert (await tp.wait(published.id)).state is State.SUCCEEDED


async def test_a_stopping_leader_hands_back_what_it_took_ahead():
    app, runs = counting_app()
    events = Events()
    async with TestPlatform(
        app, Settings(forward_horizon=5), scheduler=False, plugins=[events]
    ) as tp:
        durable(tp)
        first = await tp.start_scheduler(owner="first")
        await tp.advance(0.1)
        published = await tp.client.publish("jobs.ahead", delay=4)
        await tp.advance(0.5)
        assert (await tp.get(published.id)).state is State.READY
        await first.stop()
        assert (await tp.get(published.id)).state is State.SCHEDULED
        assert not events.dispatched
        await tp.start_scheduler(owner="second")
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert runs[published.id] == 1
    assert events.dispatched[published.id] == 1


async def test_a_leader_that_dies_holding_tasks_leaves_them_to_the_next_within_its_lease():
    app, clock, starts = timed_app()
    settings = Settings(forward_horizon=2, leader_ttl=6, ready_timeout=300)
    async with TestPlatform(app, settings, scheduler=False, clock=clock) as tp:
        durable(tp)
        first = await tp.start_scheduler(owner="first")
        await tp.start_scheduler(owner="second")
        published = await tp.client.publish("timed.held", delay=1.5)
        await tp.advance(0.5)
        assert (await tp.get(published.id)).state is State.READY  # held by the leader
        await first.crash()
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert len(starts) == 1
    # Its short stamp ran out leader_ttl past the horizon: not ready_timeout later.
    assert published.run_at <= starts[0] <= published.run_at + 2 + 6 + settings.reap_interval


async def test_published_held_tasks_are_stamped_as_a_publish_stamps_them():
    app = App()
    settings = Settings(forward_horizon=2, ready_timeout=40)
    async with await ahead(app, settings, workers=0) as tp:
        published = await tp.client.publish("idle.job", delay=1)
        await tp.advance(1.1)
        record = await tp.get(published.id)
        assert record.state is State.READY
        assert record.lease_until == pytest.approx(published.run_at + 40, abs=0.1)


async def test_the_reaper_never_publishes_a_task_before_its_run_at():
    app, clock, starts = timed_app()
    async with TestPlatform(app, clock=clock) as tp:
        published = await tp.client.publish("timed.early", delay=30)
        now = tp.clock.now()
        # As a forwarder that died holding it would leave it: READY, its stamp soon over.
        [taken] = await tp.platform.store.take_due(now=now + 30, limit=1, ready_until=now + 2)
        assert taken.id == published.id
        await tp.advance(5)  # the reaper met it: back to SCHEDULED, not published
        assert (await tp.get(published.id)).state is State.SCHEDULED
        assert starts == []
        await tp.wait(published.id)
    assert published.run_at <= starts[0] <= published.run_at + 0.1


async def test_a_task_cancelled_while_held_is_not_run():
    app, runs = counting_app()
    async with await ahead(app, Settings(forward_horizon=5)) as tp:
        published = await tp.client.publish("jobs.ahead", delay=3)
        await tp.advance(0.5)
        assert (await tp.get(published.id)).state is State.READY
        await tp.client.cancel(published.id)
        await tp.run_until_idle()
        assert (await tp.get(published.id)).state is State.CANCELLED
    assert runs[published.id] == 0


async def test_a_failed_publish_of_held_tasks_hands_all_of_them_back():
    app, runs = counting_app()
    async with await ahead(app, Settings(forward_horizon=5, forward_batch=2)) as tp:
        flaky = FlakyPublish(tp.platform.transport, failures=1)
        tp.platform.transport = flaky
        published = await tp.client.publish_many(
            [tp.client.request("jobs.ahead", delay=3) for _ in range(4)]
        )
        await tp.advance(0.5)
        assert {(await tp.get(p.id)).state for p in published} == {State.READY}
        await tp.clock.advance(2.5 + 0.001)  # the first batch of two fails
        assert len(flaky.attempts) == 1
        assert {(await tp.get(p.id)).state for p in published} == {State.SCHEDULED}
        await tp.run_until_idle()
    assert sorted(runs[p.id] for p in published) == [1, 1, 1, 1]


async def test_the_forwarder_holds_at_most_its_share_ahead():
    app, runs = counting_app()
    settings = Settings(forward_horizon=10, forward_batch=2)
    async with await ahead(app, settings) as tp:
        published = await tp.client.publish_many(
            [tp.client.request("jobs.ahead", delay=5) for _ in range(3 * HELD_BATCHES)]
        )
        await tp.advance(1)
        states = Counter([(await tp.get(p.id)).state for p in published])
        assert states == {State.READY: 2 * HELD_BATCHES, State.SCHEDULED: HELD_BATCHES}
        await tp.run_until_idle()
    assert sorted(runs[p.id] for p in published) == [1] * 3 * HELD_BATCHES


async def test_many_due_tasks_are_forwarded_in_full_batches_back_to_back():
    app, runs = counting_app()
    events = Events()
    async with TestPlatform(app, Settings(forward_batch=5), plugins=[events]) as tp:
        published = await tp.client.publish_many(
            [tp.client.request("jobs.batch", delay=1) for _ in range(12)]
        )
        await tp.advance(1 + tp.settings.forward_interval)
        assert all(events.dispatched[p.id] == 1 for p in published)
        await tp.run_until_idle()
    assert sorted(runs.values()) == [1] * 12


async def test_a_failed_publish_releases_the_batch_for_the_next_look():
    app, runs = counting_app()
    events = Events()
    async with TestPlatform(app, plugins=[events]) as tp:
        flaky = FlakyPublish(tp.platform.transport, failures=1)
        tp.platform.transport = flaky
        published = await tp.client.publish("jobs.delayed", delay=5)
        while not flaky.attempts:
            await tp.advance(0.01)
        assert flaky.attempts == [[published.id]]
        assert (await tp.get(published.id)).state is State.SCHEDULED
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert runs[published.id] == 1
    assert flaky.attempts == [[published.id], [published.id]]
    assert events.dispatched[published.id] == 1


async def test_a_failed_direct_publish_is_left_to_the_forwarder():
    app, runs = counting_app()
    async with TestPlatform(app) as tp:
        tp.platform.transport = FlakyPublish(tp.platform.transport, failures=1)
        published = await tp.client.publish("jobs.now")
        assert published.created
        assert (await tp.get(published.id)).state is State.SCHEDULED
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert runs[published.id] == 1


class FlakyPublish:
    """A transport whose first ``failures`` publishes fail."""

    def __init__(self, transport, failures: int) -> None:
        self._transport = transport
        self.capabilities = transport.capabilities
        self.failures = failures
        self.attempts: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self._transport, name)

    async def publish(self, tasks: Sequence[Task]) -> None:
        self.attempts.append([task.id for task in tasks])
        if self.failures:
            self.failures -= 1
            raise BackendUnavailable("publish not confirmed")
        await self._transport.publish(tasks)


class LosingPublish(FlakyPublish):
    """A transport that confirms its first publishes and loses them."""

    async def publish(self, tasks: Sequence[Task]) -> None:
        self.attempts.append([task.id for task in tasks])
        if self.failures:
            self.failures -= 1
            return
        await self._transport.publish(tasks)


# -- the reaper ---------------------------------------------------------------------------


async def test_a_ready_task_nobody_claimed_is_published_again_after_ready_timeout():
    app, runs = counting_app()
    settings = Settings(ready_timeout=20)
    async with TestPlatform(app, settings) as tp:
        tp.platform.transport = LosingPublish(tp.platform.transport, failures=1)
        published = await tp.client.publish("jobs.lost")
        await tp.advance(19)
        assert (await tp.get(published.id)).state is State.READY
        assert not runs
        record = await tp.wait(published.id)
        waited = record.finished_at - record.task.created_at  # type: ignore[operator]
    assert record.state is State.SUCCEEDED
    assert runs[published.id] == 1
    assert 20 <= waited <= 20 + settings.reap_interval + settings.forward_interval


async def dead_claim(tp: TestPlatform, task_id: str, owner: str = "ghost") -> None:
    """Lease a task to a worker that dies at once: it never heartbeats nor finishes."""
    now = tp.clock.now()
    (claim,) = await tp.platform.store.claim(
        [task_id], owner=owner, now=now, lease_until=now + tp.settings.lease
    )
    assert claim.claimed


async def test_the_reaper_recovers_an_expired_lease():
    app, runs = counting_app()
    events = Events()
    settings = Settings(lease=10, heartbeat=2)
    async with TestPlatform(app, settings, workers=0, plugins=[events]) as tp:
        published = await tp.client.publish("jobs.orphan")
        await dead_claim(tp, published.id)
        await tp.advance(9)
        assert (await tp.get(published.id)).state is State.RUNNING
        await tp.advance(1 + settings.reap_interval)
        recovered = await tp.get(published.id)
        assert recovered.state in (State.SCHEDULED, State.READY)
        await tp.start_worker()
        record = await tp.wait(published.id)
    assert [r.id for r in events.recovered] == [published.id]
    assert record.state is State.SUCCEEDED
    assert record.task.attempt == 2
    ((kind, attempt),) = [(e.kind, e.attempt) for e in record.errors]
    assert (kind, attempt) == ("lease", 1)
    assert runs[published.id] == 1


async def test_an_expired_lease_without_attempts_left_goes_dead():
    events = Events()
    async with TestPlatform(
        App(), Settings(lease=10, heartbeat=2), workers=0, plugins=[events]
    ) as tp:
        published = await tp.client.publish("jobs.orphan", max_attempts=1)
        await dead_claim(tp, published.id)
        await tp.advance(12)
        record = await tp.get(published.id)
    assert record.state is State.DEAD
    assert record.errors[-1].kind == "lease"
    assert events.dead == [(published.id, record.errors[-1].message)]


async def test_a_new_leader_trusts_a_durable_transport_with_its_ready_tasks():
    events = Events()
    async with TestPlatform(App(), workers=0, scheduler=False, plugins=[events]) as tp:
        caps = tp.platform.transport.capabilities
        tp.platform.transport.capabilities = dataclasses.replace(caps, durable=True)
        published = await tp.client.publish("jobs.waiting")
        await tp.start_scheduler()
        await tp.advance(5)
        assert (await tp.get(published.id)).state is State.READY
    assert events.dispatched[published.id] == 1


# -- the pruner ---------------------------------------------------------------------------


async def test_finished_tasks_are_pruned_after_retention_but_dead_letters_stay():
    app = App()

    @app.task("ok")
    async def ok() -> None: ...

    @app.task("bad", max_attempts=1)
    async def bad() -> None:
        raise ValueError("no")

    async with TestPlatform(app, Settings(retention=100)) as tp:
        kept = await tp.client.publish("ok")
        dead = await tp.client.publish("bad")
        cancelled = await tp.client.publish("ok", delay=1000)
        await tp.client.cancel(cancelled.id)
        await tp.run_until_idle()
        await tp.advance(95)
        assert len(await tp.tasks()) == 3
        await tp.advance(70)  # the pruner looks once a minute
        remaining = await tp.tasks()
    assert [r.id for r in remaining] == [dead.id]
    assert kept.id != dead.id


# -- leadership ---------------------------------------------------------------------------


async def test_of_two_schedulers_one_leads_and_a_crashed_leader_is_replaced():
    app, runs = counting_app()
    events = Events()
    settings = Settings(leader_ttl=6)
    async with TestPlatform(app, settings, scheduler=False, plugins=[events]) as tp:
        taken = CountingTakes(tp.platform.store)
        tp.platform.store = taken
        first = await tp.start_scheduler(owner="first")
        second = await tp.start_scheduler(owner="second")
        published = await tp.client.publish_many(
            [tp.client.request("jobs.tick", delay=n) for n in range(1, 21)]
        )
        for _ in range(10):
            await tp.advance(0.5)
            assert [first.is_leader, second.is_leader] == [True, False]
        await first.crash()
        crashed_at = tp.clock.now()
        while not second.is_leader:
            await tp.advance(0.1)
            assert tp.clock.now() - crashed_at <= settings.leader_ttl + 0.1
        await tp.run_until_idle()
        records = [await tp.get(p.id) for p in published]
    assert all(r.state is State.SUCCEEDED for r in records)
    assert set(runs.values()) == {1}
    assert len(runs) == 20
    assert set(taken.taken.values()) == {1}
    assert len(taken.taken) == 20
    (first_token,) = [t for what, owner, t in events.leaders if owner == "first" and t]
    (second_token,) = [t for what, owner, t in events.leaders if owner == "second" and t]
    assert second_token > first_token


async def test_a_stopped_leader_hands_over_at_once():
    events = Events()
    async with TestPlatform(
        App(), Settings(leader_ttl=30), scheduler=False, plugins=[events]
    ) as tp:
        first = await tp.start_scheduler(owner="first")
        second = await tp.start_scheduler(owner="second")
        await first.stop()
        await tp.advance(30 / 3)
        assert second.is_leader
    assert [(what, owner) for what, owner, _ in events.leaders] == [
        ("acquired", "first"),
        ("lost", "first"),
        ("acquired", "second"),
        ("lost", "second"),
    ]


async def test_a_fenced_out_leader_steps_down_and_competes_again():
    events = Events()
    async with TestPlatform(App(), scheduler=False, plugins=[events]) as tp:
        tp.platform.store = FencedOnce(tp.platform.store)
        scheduler = await tp.start_scheduler(owner="only")
        await tp.advance(tp.settings.leader_ttl)
        assert scheduler.is_leader
    assert [what for what, _, _ in events.leaders][:3] == ["acquired", "lost", "acquired"]


class CountingTakes:
    """A store that counts how often the forwarder took each task."""

    def __init__(self, store) -> None:
        self._store = store
        self.taken: Counter[str] = Counter()

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def take_due(self, **kwargs):
        tasks = await self._store.take_due(**kwargs)
        self.taken.update(task.id for task in tasks)
        return tasks


async def test_tasks_due_while_leaderless_are_published_once_by_the_new_leader():
    app, runs = counting_app()
    events = Events()
    async with TestPlatform(app, Settings(leader_ttl=6), scheduler=False, plugins=[events]) as tp:
        first = await tp.start_scheduler(owner="first")
        await tp.start_scheduler(owner="second")
        published = await tp.client.publish("jobs.gap", delay=6)
        await tp.advance(1)
        await first.crash()
        await tp.run_until_idle()
    assert runs[published.id] == 1
    assert events.dispatched[published.id] == 1


class FencedOnce:
    def __init__(self, store) -> None:
        self._store = store
        self.fenced = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def take_due(self, **kwargs):
        if not self.fenced:
            self.fenced = True
            raise FencedOut("a newer leader wrote")
        return await self._store.take_due(**kwargs)


async def test_a_new_leader_publishes_every_ready_task_of_a_non_durable_transport_again():
    events = Events()
    app, runs = counting_app()
    async with TestPlatform(app, workers=0, scheduler=False, plugins=[events]) as tp:
        published = await tp.client.publish("jobs.waiting")
        assert (await tp.get(published.id)).state is State.READY
        await tp.advance(1)  # published before this leadership began
        await tp.start_scheduler()
        await tp.start_worker()
        record = await tp.wait(published.id)
    assert events.dispatched[published.id] == 2  # by the producer, then by the new leader
    assert record.state is State.SUCCEEDED
    assert runs[published.id] == 1


# -- components and the elector, alone ----------------------------------------------------


class Scripted(Component):
    name = "scripted"

    def __init__(self, clock: ManualClock, script: list[object]) -> None:
        self.fenced = 0
        super().__init__(clock, 1.0, Leadership(lambda: Fence("x", 1), self._fence_lost))
        self.script = script
        self.ticks: list[float] = []

    def _fence_lost(self) -> None:
        self.fenced += 1

    async def tick(self) -> bool:
        self.ticks.append(self._clock.now())
        step = self.script.pop(0) if self.script else False
        if isinstance(step, BaseException):
            raise step
        return bool(step)


async def test_a_component_carries_on_after_errors_and_goes_again_after_a_full_batch(caplog):
    clock = ManualClock(start=0)
    component = Scripted(
        clock, [BackendUnavailable("down"), ValueError("bug"), FencedOut("old"), True, False]
    )
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="atp.scheduler"):
        task = asyncio.create_task(component.run(stop))
        await clock.advance(3)
        stop.set()
        await clock.advance(1)
        await task
    assert component.ticks == [0, 1, 2, 3, 3]
    assert component.fenced == 1
    assert "tick failed, will retry: down" in caplog.text
    assert "tick crashed, will retry" in caplog.text
    assert "fenced out, stepping down" in caplog.text


class BrokenCoordinator:
    def __init__(self, inner) -> None:
        self._inner = inner
        self.broken = False

    def __getattr__(self, name):
        attr = getattr(self._inner, name)

        async def call(*args, **kwargs):
            if self.broken:
                raise BackendUnavailable("coordinator down")
            return await attr(*args, **kwargs)

        return call


async def test_an_elector_cut_off_from_its_coordinator_leads_only_until_its_lease_ends():
    clock = ManualClock(start=0)
    platform = Platform.build(Settings(**MEMORY, leader_ttl=9), clock=clock, local=True)
    platform.coordinator = BrokenCoordinator(platform.coordinator)  # type: ignore[assignment]
    elector = Elector(platform.coordinator, clock, "me", ttl=platform.settings.leader_ttl)
    with pytest.raises(NotLeading, match="no longer holds"):
        elector.fence()
    assert await elector.step()
    assert elector.interval == 3
    assert elector.fence() == Fence("scheduler", elector.lease.token)  # type: ignore[union-attr]
    platform.coordinator.broken = True  # type: ignore[attr-defined]
    await clock.advance(5)
    assert await elector.step()  # renewal failed, but the lease has 4 s left
    await clock.advance(4)
    assert not await elector.step()
    assert elector.lease is None
    await elector.release()  # the release fails too: logged, the lease runs out
    platform.coordinator.broken = False  # type: ignore[attr-defined]
    assert await elector.step()
    elector.drop()
    assert elector.lease is None
    await elector.release()


async def test_a_failed_republish_goes_back_to_the_forwarder():
    app, runs = counting_app()
    async with TestPlatform(app, Settings(ready_timeout=20)) as tp:
        losing = LosingPublish(tp.platform.transport, failures=1)
        tp.platform.transport = losing
        published = await tp.client.publish("jobs.lost")
        tp.platform.transport = FlakyPublish(losing, failures=1)  # the reaper's republish fails
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert runs[published.id] == 1


async def test_closing_a_platform_closes_every_backend_despite_failures(caplog):
    platform = Platform.build(Settings(**MEMORY), clock=ManualClock(), local=True)
    closed: list[str] = []

    class Closing:
        def __init__(self, name: str, fails: bool) -> None:
            self.name, self.fails = name, fails

        async def close(self) -> None:
            closed.append(self.name)
            if self.fails:
                raise BackendUnavailable("gone")

    platform.transport = Closing("transport", True)  # type: ignore[assignment]
    platform.coordinator = Closing("coordinator", False)  # type: ignore[assignment]
    platform.store = Closing("store", True)  # type: ignore[assignment]
    await platform.close()
    assert closed == ["transport", "coordinator", "store"]
    assert "closing the transport failed" in caplog.text
    assert "closing the store failed" in caplog.text


async def test_a_separate_scheduler_refuses_a_process_local_transport():
    memory = "memory://"
    settings = Settings(store=memory, transport=memory, coordinator=memory)
    platform = Platform.build(settings, clock=ManualClock(), local=False)
    with pytest.raises(ConfigError, match="process-local"):
        await Scheduler(platform).run(asyncio.Event())
    assert await platform.coordinator.holder("scheduler") is None  # it never competed
