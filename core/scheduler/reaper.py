"""The reaper: recovers work whose holder vanished, where the transport does not."""

from __future__ import annotations

import logging

from atp.core.dispatch import Dispatcher
from atp.core.model import State, Task
from atp.core.plugins import HookEmitter
from atp.core.ports import Clock, TaskStore
from atp.core.scheduler.component import Component, Leadership
from atp.core.settings import Settings

__all__ = ["Reaper"]

log = logging.getLogger("atp.scheduler.reaper")

HORIZON_MARGIN = 0.001
"""Seconds under the horizon, so a stamp made as this leadership began is not taken."""


class Reaper(Component):
    """Each tick recovers expired leases and republishes READY tasks nobody claimed.

    - RUNNING past its store lease (the worker died): back to SCHEDULED, or DEAD when
      the task's own ``max_attempts`` are spent. A task without its own limit goes back
      in any case: its handler may set one the scheduler cannot know, and the worker
      that claims it next sends it to DEAD, unrun, if it has no attempt left. Done on
      every transport, also those that redeliver by themselves: a transport's
      redelivery may already have been dropped as a duplicate while the old holder
      lived, and the store's lease is the one the worker's heartbeat keeps.
    - READY past its stamp (published, never claimed within ``ready_timeout``; or taken
      ahead by a forwarder that died before publishing it): published again. When
      this process becomes leader over a non-durable transport, the queues of the
      previous leader's process are gone: every READY task stamped before this
      leadership began is published again at once, batch by batch. None is published
      before its ``run_at``: one not yet due goes back to SCHEDULED.
    """

    name = "reaper"

    def __init__(
        self,
        store: TaskStore,
        dispatcher: Dispatcher,
        clock: Clock,
        emit: HookEmitter,
        settings: Settings,
        *,
        durable: bool,
        leader: Leadership,
    ) -> None:
        """``durable``: the transport keeps what it was given across a process's death."""
        super().__init__(clock, settings.reap_interval, leader)
        self._store = store
        self._dispatcher = dispatcher
        self._emit = emit
        self._batch = settings.forward_batch
        self._ready_timeout = settings.ready_timeout
        self._catching_up = not durable
        # Stamps are now + ready_timeout: older ones were made before this leadership.
        self._horizon = clock.now() + settings.ready_timeout

    async def tick(self) -> bool:
        recovered = await self._recover()
        republished = await self._redispatch()
        return max(recovered, republished) >= self._batch

    async def _recover(self) -> int:
        records = await self._store.recover(
            now=self._clock.now(),
            limit=self._batch,
            default_max_attempts=None,
            fence=self._fence(),
        )
        if records:
            log.warning("recovered %d tasks whose worker's lease expired", len(records))
            self._emit("atp_task_recovered", records=records)
            for record in records:
                if record.state is State.DEAD and record.last_error is not None:
                    self._emit("atp_task_dead", record=record, reason=record.last_error.message)
        return len(records)

    async def _redispatch(self) -> int:
        now = self._clock.now()
        catching_up = self._catching_up
        tasks = await self._store.redispatch(
            now=self._horizon - HORIZON_MARGIN if catching_up else now,
            limit=self._batch,
            ready_until=now + self._ready_timeout,
            fence=self._fence(),
        )
        if len(tasks) < self._batch:
            self._catching_up = False
        taken = len(tasks)
        tasks = await self._not_early(tasks, now)
        if not tasks:
            return taken
        await self._dispatcher.publish(tasks)
        log.info("published %d READY tasks again", len(tasks))
        return taken

    async def _not_early(self, tasks: list[Task], now: float) -> list[Task]:
        """The tasks already due; the others (taken ahead by a forwarder, met while
        catching up) go back to SCHEDULED, for the forwarder to publish on time."""
        early = [task.id for task in tasks if task.run_at > now]
        if not early:
            return tasks
        await self._store.release(early, now=now)
        return [task for task in tasks if task.run_at <= now]
