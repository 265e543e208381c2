"""The pruner: deletes finished tasks once their retention has passed."""

from __future__ import annotations

from atp.core.ports import Clock, TaskStore
from atp.core.scheduler.component import Component, Leadership

__all__ = ["Pruner"]

PRUNE_INTERVAL = 60.0


class Pruner(Component):
    """Each tick deletes up to a batch of SUCCEEDED and CANCELLED tasks past ``retention``
    and closed idempotency windows. Dead letters stay until purged."""

    name = "pruner"

    def __init__(
        self,
        store: TaskStore,
        clock: Clock,
        *,
        retention: float,
        batch: int,
        leader: Leadership,
    ) -> None:
        super().__init__(clock, PRUNE_INTERVAL, leader)
        self._store = store
        self._retention = retention
        self._batch = batch

    async def tick(self) -> bool:
        now = self._clock.now()
        deleted = await self._store.prune(
            finished_before=now - self._retention, now=now, limit=self._batch
        )
        return deleted >= self._batch
