"""The forwarder (the watchdog): moves due SCHEDULED tasks to READY and publishes them."""

from __future__ import annotations

import logging
from collections.abc import Callable

from atp.core.errors import AtpError
from atp.core.platform import Platform
from atp.core.ports import Fence
from atp.core.scheduler.component import Component

__all__ = ["Forwarder"]

log = logging.getLogger("atp.scheduler.forwarder")


class Forwarder(Component):
    """Each tick takes up to ``forward_batch`` due tasks in one atomic store call.

    A failed publish puts the batch back to SCHEDULED, so the next tick tries again; a
    crash between the two leaves them READY, and the reaper publishes them again once
    ``ready_timeout`` has passed. Nothing taken is lost either way.
    """

    name = "forwarder"

    def __init__(
        self, platform: Platform, fence: Callable[[], Fence], on_fenced: Callable[[], None]
    ) -> None:
        settings = platform.settings
        super().__init__(platform.clock, settings.forward_interval, fence, on_fenced)
        self._platform = platform
        self._batch = settings.forward_batch
        self._ready_timeout = settings.ready_timeout

    async def tick(self) -> bool:
        now = self._clock.now()
        tasks = await self._platform.store.take_due(
            now=now, limit=self._batch, ready_until=now + self._ready_timeout, fence=self._fence()
        )
        if not tasks:
            return False
        try:
            await self._platform.transport.publish(tasks)
        except AtpError:
            await self._platform.store.release([task.id for task in tasks], now=self._clock.now())
            raise
        self._platform.emit("atp_task_dispatched", tasks=tasks)
        return len(tasks) >= self._batch
