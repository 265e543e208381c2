"""The scheduler: many replicas, one leader; the leader runs the components."""

from __future__ import annotations

import asyncio
import logging

from atp.core.ids import process_name
from atp.core.platform import Platform
from atp.core.plugins import Lifecycle
from atp.core.scheduler.component import Leadership
from atp.core.scheduler.components import (
    ComponentFactory,
    cron,
    flow_sweep,
    forwarder,
    pruner,
    reaper,
    workflow_sweep,
)
from atp.core.scheduler.elector import Elector
from atp.core.skew import SkewGuard

__all__ = ["COMPONENTS", "Scheduler"]

log = logging.getLogger("atp.scheduler")

COMPONENTS: tuple[ComponentFactory, ...] = (
    forwarder,
    cron,
    workflow_sweep,
    reaper,
    flow_sweep,
    pruner,
)
"""Started in this order when leadership is won, stopped in reverse when it is lost."""


class Scheduler:
    """Competes for the leader lease; while it leads, runs the components."""

    def __init__(
        self,
        platform: Platform,
        *,
        owner: str | None = None,
        components: tuple[ComponentFactory, ...] = COMPONENTS,
    ) -> None:
        owner = owner or process_name()
        settings = platform.settings
        guard = f"scheduler {owner}"
        skew = SkewGuard(platform.store, platform.clock, settings.max_clock_skew, guard)
        self.elector = Elector(
            platform.coordinator, platform.clock, owner, ttl=settings.leader_ttl, skew=skew
        )
        self._platform = platform
        self._factories = components
        self._fenced = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self.elector.lease is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Compete and lead until ``stop`` is set; then stop leading and release the lease.

        Raises ConfigError first for a transport it cannot feed workers through.
        """
        self._platform.check_scheduler()
        clock = self._platform.clock
        self._platform.emit("atp_scheduler_started", scheduler=self.elector.owner)
        try:
            while not stop.is_set():
                if await self.elector.step():
                    await self._lead(stop)
                else:
                    await clock.wait(stop, self.elector.interval)
            await self.elector.release()
        finally:
            self._platform.emit("atp_scheduler_stopped", scheduler=self.elector.owner)

    async def _lead(self, stop: asyncio.Event) -> None:
        lease = self.elector.lease
        assert lease is not None
        self._announce("atp_leader_acquired", token=lease.token)
        stop_components = asyncio.Event()
        leader = Leadership(self.elector.fence, self._fenced.set)
        components = [factory(self._platform, leader) for factory in self._factories]
        tasks = [asyncio.create_task(c.run(stop_components)) for c in components]
        try:
            await self._hold(stop)
        finally:
            stop_components.set()
            for task in reversed(tasks):
                await asyncio.gather(task, return_exceptions=True)
            self._announce("atp_leader_lost")

    async def _hold(self, stop: asyncio.Event) -> None:
        """Renew the lease until it is lost, fenced out, or ``stop`` is set."""
        clock = self._platform.clock
        self._fenced.clear()
        while not stop.is_set():
            await clock.wait(stop, self.elector.interval)
            if self._fenced.is_set():
                self.elector.drop()
                return
            if stop.is_set() or not await self.elector.step():
                return

    def _announce(self, hook: Lifecycle, **extra: object) -> None:
        log.info("scheduler %s: %s", self.elector.owner, hook.removeprefix("atp_"))
        self._platform.emit(hook, role=self.elector.role, owner=self.elector.owner, **extra)
