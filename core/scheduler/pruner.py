"""The pruner: deletes finished tasks once their retention has passed."""

from __future__ import annotations

from collections.abc import Callable

from atp.core.platform import Platform
from atp.core.ports import Fence
from atp.core.scheduler.component import Component

__all__ = ["Pruner"]

PRUNE_INTERVAL = 60.0


class Pruner(Component):
    """Each tick deletes up to a batch of SUCCEEDED and CANCELLED tasks past ``retention``
    and closed idempotency windows. Dead letters stay until purged."""

    name = "pruner"

    def __init__(
        self, platform: Platform, fence: Callable[[], Fence], on_fenced: Callable[[], None]
    ) -> None:
        super().__init__(platform.clock, PRUNE_INTERVAL, fence, on_fenced)
        self._platform = platform
        self._batch = platform.settings.forward_batch

    async def tick(self) -> bool:
        now = self._clock.now()
        deleted = await self._platform.store.prune(
            finished_before=now - self._platform.settings.retention, now=now, limit=self._batch
        )
        return deleted >= self._batch
