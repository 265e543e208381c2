"""A scheduler whose clock is 120 s ahead of Redis's (ADR 0029), on a real server: it
refuses to lead, so six running, heartbeating tasks stay alive and a delayed task waits
for its time."""

from __future__ import annotations

import asyncio
import time

import pytest

from atp.core.clock import SkewedClock, SystemClock
from atp.core.context import current_task
from atp.core.model import State, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import ServerTime
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App

pytestmark = pytest.mark.integration

WINDOW = 3.0
"""Seconds the skewed scheduler has to do harm: its reaper would dead-letter the running
tasks within one reap_interval, its forwarder run the delayed one at once."""


def settings(url: str) -> Settings:
    return Settings(
        store=url,
        transport=url,
        lease=2.0,
        heartbeat=0.5,
        leader_ttl=2.0,
        reap_interval=0.5,
        max_attempts=1,
    )


def blocking_app(release: asyncio.Event, started: dict[str, float]) -> App:
    app = App("skew")

    @app.task("jobs.*")
    async def job() -> None:
        started.setdefault(current_task().id, time.time())
        await release.wait()

    return app


async def test_the_store_tells_the_redis_servers_time(url: str) -> None:
    platform = Platform.build(settings(url))
    store = platform.store
    assert isinstance(store, ServerTime)
    try:
        before = time.time()
        server = await store.server_time()
        after = time.time()
    finally:
        await platform.close()
    assert before - 1.0 <= server <= after + 1.0  # one host: only the rounding differs


async def test_a_scheduler_120s_ahead_kills_no_running_task_and_runs_nothing_early(
    url: str,
) -> None:
    honest = Platform.build(settings(url))
    ahead = Platform.build(settings(url), clock=SkewedClock(SystemClock(), 120.0))
    release, started = asyncio.Event(), {}
    app = blocking_app(release, started)
    stop, stop_ahead = asyncio.Event(), asyncio.Event()
    loops = [asyncio.create_task(Worker(honest, app.registry).run(stop))]
    service = TaskService(honest)
    try:
        running = await service.publish([PublishRequest("jobs.run") for _ in range(6)])
        ids = [p.id for p in running]
        await _until(honest, ids, {State.RUNNING})
        (later,) = await service.publish([PublishRequest("jobs.later", delay=WINDOW + 1)])
        skewed = Scheduler(ahead, owner="ahead")
        loops.append(asyncio.create_task(skewed.run(stop_ahead)))
        led = False
        for _ in range(int(WINDOW / 0.1)):
            await asyncio.sleep(0.1)
            led = led or skewed.is_leader
        assert {r.state for r in await _records(honest, ids)} == {State.RUNNING}
        assert (await _records(honest, [later.id]))[0].state is State.SCHEDULED
        assert not led
        loops.append(asyncio.create_task(Scheduler(honest, owner="honest").run(stop)))
        release.set()
        records = await _until(honest, [*ids, later.id], {State.SUCCEEDED})
    finally:
        stop.set()
        stop_ahead.set()
        await asyncio.gather(*loops, return_exceptions=True)
        await ahead.close()
        await honest.close()
    assert all(r.task.attempt == 1 for r in records)
    assert started[later.id] >= later.run_at


async def _records(platform: Platform, ids: list[str]) -> list[TaskRecord]:
    records = await platform.store.get(ids)
    assert all(r is not None for r in records)
    return [r for r in records if r is not None]


async def _until(
    platform: Platform, ids: list[str], states: set[State], timeout: float = 20.0
) -> list[TaskRecord]:
    deadline = time.monotonic() + timeout
    while True:
        records = await _records(platform, ids)
        if {r.state for r in records} <= states:
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"not all {states}: {[r.state for r in records]}")
        await asyncio.sleep(0.05)
