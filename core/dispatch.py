"""Handing READY tasks to the transport: publish, release on failure, announce.

The producer's publish, the forwarder and the reaper all dispatch through one
``Dispatcher``; each keeps only what is its own (the producer swallows the failure, the
forwarder holds tasks back, the forwarder restamps what it took ahead).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from atp.core.errors import AtpError
from atp.core.model import Task
from atp.core.plugins import HookEmitter
from atp.core.ports import Clock, TaskStore, Transport

__all__ = ["Dispatcher"]

log = logging.getLogger("atp.dispatch")


class Dispatcher:
    """Publishes READY tasks to the transport and fires ``atp_task_dispatched``.

    ``transport`` and ``store`` are plain attributes: the Platform that owns this
    dispatcher re-points them when one of its backends is replaced.
    """

    __slots__ = ("clock", "emit", "store", "transport")

    def __init__(
        self, transport: Transport, store: TaskStore, clock: Clock, emit: HookEmitter
    ) -> None:
        self.transport = transport
        self.store = store
        self.clock = clock
        self.emit = emit

    async def publish(self, tasks: Sequence[Task], *, release: bool = True) -> None:
        """Publish ``tasks`` and announce them as dispatched.

        If the transport refuses (an AtpError), nothing is announced, the tasks go back
        to SCHEDULED unless ``release`` is False (the caller holds them), and the
        transport's error is raised. A failed release is logged, not raised: the tasks
        stay READY and the reaper publishes them again after ``ready_timeout``.
        """
        try:
            await self.transport.publish(tasks)
        except AtpError:
            if release:
                await self._release(tasks)
            raise
        self.emit("atp_task_dispatched", tasks=tasks)

    async def _release(self, tasks: Sequence[Task]) -> None:
        try:
            await self.store.release([task.id for task in tasks], now=self.clock.now())
        except AtpError as exc:
            log.warning("release of %d tasks failed: %s", len(tasks), exc)
