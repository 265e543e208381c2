"""The scheduler's workflow component: fires signal timeouts and recovers stalled runs.

A run records when it must be looked at next (``Run.wake_at``): a signal step's timeout,
or ``RECHECK`` seconds ahead while its tasks run. The leader advances the runs whose time
came. A worker advances a run right after a step's task finished; the sweep covers the
worker that died in between, a step task cancelled or reaped to DEAD outside a worker,
and a start whose process died before its first steps were enqueued.
"""

from __future__ import annotations

import asyncio

from atp.core.ports import Clock
from atp.core.scheduler.component import Component, Leadership
from atp.core.workflows.engine import WorkflowEngine

__all__ = ["WorkflowSweep"]

INTERVAL = 1.0
"""Seconds between two looks for due runs: the resolution of signal timeouts."""
BATCH = 100
"""Runs advanced per tick."""


class WorkflowSweep(Component):
    """Advances the runs whose ``wake_at`` passed, ``BATCH`` at a time, while leading.

    A store that keeps no workflows is logged once and the component stays idle.
    """

    name = "workflows"

    def __init__(
        self,
        engine: WorkflowEngine | None,
        clock: Clock,
        *,
        leader: Leadership,
    ) -> None:
        """``engine`` None: the store keeps no workflows, and the component stays idle."""
        super().__init__(clock, INTERVAL, leader)
        self._engine = engine

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until ``stop`` is set; return at once if the store keeps no workflows."""
        if self._engine is not None:
            await super().run(stop)

    async def tick(self) -> bool:
        if self._engine is None:
            return False
        self._fence()  # NotLeading once the lease ran out: leave the runs to the next leader
        return await self._engine.sweep(BATCH) >= BATCH
