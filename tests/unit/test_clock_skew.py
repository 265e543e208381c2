"""Skewed clocks (ADR 0029): a host whose clock is off the store's neither leads nor takes
tasks, so it can neither dead-letter healthy work nor run delayed tasks early."""

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence

import pytest

from atp.core.clock import ManualClock, SkewedClock
from atp.core.context import current_task
from atp.core.errors import BackendUnavailable, ConfigError
from atp.core.model import State, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import hookimpl
from atp.core.ports import Lease
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.core.skew import Skew, SkewGuard
from atp.core.worker.runtime import Worker
from atp.sdk import App
from atp.sdk.testing import TestPlatform, TestScheduler

SETTINGS = Settings(lease=10, heartbeat=2, leader_ttl=9)


class Events:
    """Records leadership changes, recoveries and dead letters."""

    def __init__(self) -> None:
        self.leaders: list[tuple[str, str]] = []
        self.recovered: list[str] = []
        self.dead: list[str] = []

    @hookimpl
    def atp_leader_acquired(self, role: str, owner: str, token: int) -> None:
        self.leaders.append(("acquired", owner))

    @hookimpl
    def atp_leader_lost(self, role: str, owner: str) -> None:
        self.leaders.append(("lost", owner))

    @hookimpl
    def atp_task_recovered(self, records: Sequence[TaskRecord]) -> None:
        self.recovered.extend(r.id for r in records)

    @hookimpl
    def atp_task_dead(self, record: TaskRecord, reason: str) -> None:
        self.dead.append(record.id)


class ServerClockStore:
    """A store whose server keeps ``clock``'s time: the deployment's reference clock."""

    def __init__(self, store, clock: ManualClock) -> None:
        self._store = store
        self._clock = clock
        self.down = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def server_time(self) -> float:
        if self.down:
            raise BackendUnavailable("store unreachable")
        return self._clock.now()


class HostCoordinator:
    """The coordinator as a host sees it: like the Redis one, it reports a lease's expiry
    on the host's clock (the time the request was sent plus the ttl)."""

    def __init__(self, coordinator, clock: SkewedClock) -> None:
        self._coordinator = coordinator
        self._clock = clock

    def __getattr__(self, name):
        return getattr(self._coordinator, name)

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        sent = self._clock.now()
        return _expiring(await self._coordinator.acquire(name, owner, ttl), sent + ttl)

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        sent = self._clock.now()
        return _expiring(await self._coordinator.renew(lease, ttl), sent + ttl)


def _expiring(lease: Lease | None, expires_at: float) -> Lease | None:
    return None if lease is None else dataclasses.replace(lease, expires_at=expires_at)


class Ticks:
    """A clock whose ``now`` returns the given readings in turn."""

    def __init__(self, *readings: float) -> None:
        self._readings = list(readings)

    def now(self) -> float:
        return self._readings.pop(0)


def blocking_app() -> tuple[App, asyncio.Event, Counter[str]]:
    """Handlers for ``jobs.*`` that run until ``release`` is set, counting their runs."""
    app, release = App(), asyncio.Event()
    runs: Counter[str] = Counter()

    @app.task("jobs.*")
    async def job() -> None:
        runs[current_task().id] += 1
        await release.wait()

    return app, release, runs


def skewed(tp: TestPlatform, offset: float) -> tuple[Platform, SkewedClock]:
    """A view of ``tp``'s platform from a host whose clock is ``offset`` seconds off."""
    if not isinstance(tp.platform.store, ServerClockStore):
        tp.platform.store = ServerClockStore(tp.platform.store, tp.clock)
    clock = SkewedClock(tp.clock, offset)
    coordinator = HostCoordinator(tp.platform.coordinator, clock)
    return dataclasses.replace(tp.platform, clock=clock, coordinator=coordinator), clock


def start_scheduler(tp: TestPlatform, platform: Platform, owner: str) -> TestScheduler:
    handle = TestScheduler(tp, Scheduler(platform, owner=owner))
    tp.schedulers.append(handle)
    return handle


async def six_running(tp: TestPlatform) -> list[str]:
    published = await tp.client.publish_many([tp.client.request("jobs.run") for _ in range(6)])
    await tp.advance(1)
    ids = [p.id for p in published]
    assert {(await tp.get(i)).state for i in ids} == {State.RUNNING}
    return ids


# -- the skewed clock ----------------------------------------------------------------------


async def test_a_skewed_clock_tells_time_off_by_its_offset_and_sleeps_by_the_other():
    base = ManualClock(start=1000.0)
    clock = SkewedClock(base, 120.0)
    assert clock.now() == 1120.0
    clock.offset = -5.0  # a jump
    assert clock.now() == 995.0
    sleeper = asyncio.ensure_future(clock.sleep(10))
    await base.advance(9.9)
    assert not sleeper.done()
    await base.advance(0.1)
    assert sleeper.done()


# -- measuring -----------------------------------------------------------------------------


async def test_the_skew_is_the_midpoint_against_the_server_within_half_the_round_trip():
    source = ServerClockStore(object(), ManualClock(start=50.0))
    guard = SkewGuard(source, Ticks(100.0, 102.0), 2.0, "probe")  # type: ignore[arg-type]
    assert await guard.measure() == Skew(ahead=51.0, uncertainty=1.0)


def test_a_skew_counts_as_beyond_the_bound_only_when_the_round_trip_cannot_explain_it():
    assert Skew(ahead=-2.5, uncertainty=0.1).beyond(2.0)
    assert not Skew(ahead=2.5, uncertainty=0.6).beyond(2.0)
    assert not Skew(ahead=1.9, uncertainty=0.0).beyond(2.0)


async def test_a_store_on_this_host_or_a_zero_bound_is_not_checked():
    clock = ManualClock()
    async with TestPlatform(workers=0, scheduler=False) as tp:
        assert await SkewGuard(tp.platform.store, clock, 2.0, "probe").measure() is None
    source = ServerClockStore(object(), ManualClock(start=0.0))
    guard = SkewGuard(source, clock, 0.0, "probe")
    assert await guard.check("lead") is True
    assert guard.last is None


async def test_a_failed_measurement_keeps_the_last_verdict(caplog: pytest.LogCaptureFixture):
    server = ManualClock(start=0.0)
    source = ServerClockStore(object(), server)
    guard = SkewGuard(source, ManualClock(start=100.0), 2.0, "probe")
    assert await guard.check("lead") is False
    source.down = True
    assert await guard.check("lead") is False
    await server.advance(100)
    source.down = False
    with caplog.at_level(logging.INFO, logger="atp.skew"):
        assert await guard.check("lead") is True
    assert "back within max_clock_skew" in caplog.text


# -- the leader ----------------------------------------------------------------------------


async def test_a_leader_120s_ahead_refuses_to_lead_and_kills_no_running_work(
    caplog: pytest.LogCaptureFixture,
):
    app, release, runs = blocking_app()
    events = Events()
    async with TestPlatform(app, SETTINGS, scheduler=False, plugins=[events]) as tp:
        ids = await six_running(tp)
        later = await tp.client.publish("jobs.later", delay=90)
        platform, _ = skewed(tp, +120)
        with caplog.at_level(logging.ERROR, logger="atp.skew"):
            ahead = start_scheduler(tp, platform, "ahead")
            led = False
            for _ in range(30):
                await tp.advance(1)
                led = led or ahead.is_leader
        assert {(await tp.get(i)).state for i in ids} == {State.RUNNING}
        assert (await tp.get(later.id)).state is State.SCHEDULED
        assert not led
        honest = await tp.start_scheduler(owner="honest")
        await tp.advance(1)
        assert honest.is_leader
        release.set()
        record = await tp.wait(later.id)
    assert events.recovered == []
    assert events.dead == []
    assert ("acquired", "ahead") not in events.leaders
    # It blocks until released, long before its due time: had it started early, it
    # would have finished early.
    assert record.finished_at is not None
    assert record.finished_at >= later.run_at
    assert set(runs.values()) == {1}
    assert len(runs) == 7
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "this host's clock is 120.0 s ahead of the store's" in message
    assert "refusing to lead" in message


async def test_a_leader_within_the_bound_leads():
    async with TestPlatform(App(), SETTINGS, workers=0, scheduler=False) as tp:
        platform, _ = skewed(tp, -1.5)
        near = start_scheduler(tp, platform, "near")
        await tp.advance(1)
        assert near.is_leader


async def test_a_clock_jump_mid_term_makes_the_leader_step_down_and_hand_over():
    app, release, runs = blocking_app()
    events = Events()
    async with TestPlatform(app, SETTINGS, scheduler=False, plugins=[events]) as tp:
        ids = await six_running(tp)
        platform, clock = skewed(tp, 0.0)
        jumpy = start_scheduler(tp, platform, "jumpy")
        await tp.advance(1)
        assert jumpy.is_leader
        honest = await tp.start_scheduler(owner="honest")
        clock.offset = 120
        for _ in range(SETTINGS.leader_ttl // 3 + 1):
            await tp.advance(1)
        assert {(await tp.get(i)).state for i in ids} == {State.RUNNING}
        assert not jumpy.is_leader
        assert honest.is_leader
        clock.offset = 0  # and back: the honest replica keeps the lease
        await tp.advance(10)
        assert {(await tp.get(i)).state for i in ids} == {State.RUNNING}
        release.set()
        await tp.run_until_idle()
    assert events.recovered == []
    assert events.dead == []
    assert ("lost", "jumpy") in events.leaders
    assert set(runs.values()) == {1}


# -- the worker ----------------------------------------------------------------------------


async def test_a_worker_whose_clock_lags_takes_nothing_until_it_is_back_in_bounds(
    caplog: pytest.LogCaptureFixture,
):
    app, release, runs = blocking_app()
    release.set()
    async with TestPlatform(app, SETTINGS, workers=0) as tp:
        platform, clock = skewed(tp, -120)
        stop = asyncio.Event()
        with caplog.at_level(logging.ERROR, logger="atp.skew"):
            worker = asyncio.create_task(Worker(platform, app.registry, name="behind").run(stop))
            published = await tp.client.publish("jobs.run")
            await tp.advance(20)
        assert (await tp.get(published.id)).state is State.READY
        clock.offset = 0
        record = await tp.wait(published.id)
        stop.set()
        await tp.advance(1)
        await worker
    assert record.state is State.SUCCEEDED
    assert runs[published.id] == 1
    assert "120.0 s behind the store's" in caplog.text
    assert "refusing to take tasks" in caplog.text


# -- the setting ---------------------------------------------------------------------------


def test_max_clock_skew_takes_a_duration_zero_turns_it_off_and_negative_is_refused():
    assert Settings.from_mapping({"max_clock_skew": "500ms"}).max_clock_skew == 0.5
    assert Settings(max_clock_skew=0).max_clock_skew == 0
    with pytest.raises(ConfigError, match="'max_clock_skew' must not be negative, got -1"):
        Settings(max_clock_skew=-1)
