"""A worker's presence in the registry (ADR 0041), on the memory coordinator and the
ManualClock: announced at start and every heartbeat with its running count, withdrawn on
a clean stop, gone after its TTL when it dies; a failing announcement is logged (rate
limited) and retried, never stopping the worker; a coordinator without a registry turns
presence off with one INFO line."""

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import BackendUnavailable
from atp.core.fleet import fleet
from atp.core.model import Task
from atp.core.ports import Lease, Member
from atp.core.settings import Settings
from atp.core.worker.presence import WARN_EVERY, Presence, atp_version
from atp.plugins.memory.coordinator import MemoryCoordinator
from atp.sdk import App
from atp.sdk.testing import TestPlatform

LOGGER = "atp.worker.presence"
HEARTBEAT = 2.0
TTL = 6.0
SETTINGS = Settings(heartbeat=HEARTBEAT, registry_ttl=TTL, concurrency=4)


class Unreachable(MemoryCoordinator):
    """A memory coordinator whose registry cannot be reached while ``down``."""

    down = False

    async def announce(self, members: Sequence[Member], *, ttl: float) -> None:
        if self.down:
            raise BackendUnavailable("coordinator down")
        await super().announce(members, ttl=ttl)

    async def withdraw(self, names: Sequence[str]) -> None:
        if self.down:
            raise BackendUnavailable("coordinator down")
        await super().withdraw(names)


class LeasesOnly:
    """A Coordinator that keeps leases and no registry (a third-party one, say)."""

    def __init__(self, clock: ManualClock) -> None:
        self._inner = MemoryCoordinator(clock)

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        return await self._inner.acquire(name, owner, ttl)

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        return await self._inner.renew(lease, ttl)

    async def release(self, lease: Lease) -> None:
        await self._inner.release(lease)

    async def holder(self, name: str) -> Lease | None:
        return await self._inner.holder(name)

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class Shown:
    """What presence reads off a worker, without the worker."""

    name: str
    group: str = "default"
    patterns: tuple[str, ...] = (">",)
    concurrency: int = 1
    running: tuple[Task, ...] = ()


def blocking_app(release: asyncio.Event) -> App:
    app = App()

    @app.task("orders.close")
    async def close() -> None:
        await release.wait()

    return app


async def workers(tp: TestPlatform) -> list[Member]:
    return list((await fleet(tp.platform)).workers)


async def test_a_worker_is_listed_as_it_runs_with_its_running_count():
    release = asyncio.Event()
    async with TestPlatform(blocking_app(release), SETTINGS, workers=0) as tp:
        started = tp.clock.now()
        await tp.start_worker(name="w1", group="billing")
        [member] = await workers(tp)
        assert member == Member(
            name="w1",
            role="worker",
            host=socket.gethostname(),
            pid=os.getpid(),
            version=atp_version(),
            group="billing",
            patterns=("orders.close",),
            concurrency=4,
            running=0,
            started_at=started,
            seen_at=started,
            expires_at=started + TTL,
        )
        for _ in range(3):
            await tp.client.publish("orders.close")
        await tp.advance(HEARTBEAT)
        [member] = await workers(tp)
        assert (member.running, member.seen_at) == (3, started + HEARTBEAT)
        assert member.expires_at == started + HEARTBEAT + TTL
        release.set()


async def test_a_clean_stop_withdraws_at_once():
    async with TestPlatform(App(), SETTINGS, workers=0) as tp:
        stopped = await tp.start_worker(name="w1")
        await tp.start_worker(name="w2")
        assert [m.name for m in await workers(tp)] == ["w1", "w2"]
        await stopped.stop()
        assert [m.name for m in await workers(tp)] == ["w2"]


async def test_a_killed_worker_drops_out_once_its_ttl_has_passed():
    async with TestPlatform(App(), SETTINGS, workers=0) as tp:
        presence = Presence(tp.platform, Shown("w1"))
        task = asyncio.create_task(presence.run(asyncio.Event()))
        await tp.clock.advance(HEARTBEAT * 2.5)  # announced at 0, 2 and 4 heartbeats in
        task.cancel()  # as SIGKILL: it never withdraws
        await asyncio.gather(task, return_exceptions=True)
        [member] = await workers(tp)
        assert member.expires_at == member.seen_at + TTL
        await tp.clock.advance(member.expires_at - tp.clock.now() - 0.01)
        assert [m.name for m in await workers(tp)] == ["w1"]
        await tp.clock.advance(0.01)
        assert await workers(tp) == []


async def test_a_failing_registry_is_logged_once_a_minute_and_the_worker_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    clock = ManualClock()
    coordinator = Unreachable(clock)
    async with TestPlatform(App(), SETTINGS, workers=0, clock=clock) as tp:
        tp.platform.coordinator = coordinator
        coordinator.down = True
        worker = await tp.start_worker(name="w1")
        await clock.advance(WARN_EVERY + HEARTBEAT)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2, warnings
        assert warnings[0].startswith("worker w1: announcing in the registry failed (1 in a row)")
        assert "coordinator down" in warnings[0]
        assert worker.alive
        caplog.clear()
        coordinator.down = False
        await clock.advance(HEARTBEAT)
        assert [m.name for m in await coordinator.members()] == ["w1"]
        [line] = [r.getMessage() for r in caplog.records]
        assert line.startswith("worker w1: announced again after ")
        coordinator.down = True
        await worker.stop()
        assert worker.alive is False
        assert "withdrawing from the registry failed" in caplog.records[-1].getMessage()


async def test_a_coordinator_without_a_registry_turns_presence_off_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    clock = ManualClock()
    async with TestPlatform(App(), SETTINGS, workers=0, clock=clock) as tp:
        tp.platform.coordinator = LeasesOnly(clock)
        worker = await tp.start_worker(name="w1")
        await clock.advance(HEARTBEAT * 3)
        assert worker.alive
        found = await fleet(tp.platform)
        assert (found.workers, found.registry) == ((), False)
        assert [r.getMessage() for r in caplog.records] == [
            "worker w1: the coordinator LeasesOnly keeps no registry: this worker is not "
            "listed in atp workers ls"
        ]
