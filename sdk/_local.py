"""``LocalOperations``: a Client's operations straight on a Platform in this process."""

from __future__ import annotations

from functools import cached_property

from atp.core.cron.service import ScheduleService
from atp.core.fleet import FleetService
from atp.core.flow.service import FlowService
from atp.core.platform import Platform
from atp.core.ports import Clock
from atp.core.service import TaskService
from atp.core.workflows.engine import WorkflowEngine
from atp.sdk._operations import Consumer, Operations

__all__ = ["LocalOperations"]


class LocalOperations:
    """``TaskService``, ``ScheduleService``, ``FlowService``, ``FleetService`` and
    ``WorkflowEngine`` over one Platform."""

    consumer: Consumer | None = None
    """Workers in this process consume through the transport, not through a Client."""

    def __init__(self, platform: Platform, *, owns_platform: bool = False) -> None:
        self.platform = platform
        self.tasks = TaskService(platform)
        self.schedules = ScheduleService(platform)
        self.flow = FlowService(platform)
        self.fleet = FleetService(platform)
        self._owns_platform = owns_platform

    @cached_property
    def workflows(self) -> WorkflowEngine:
        """Built on first use: ConfigError then if the store keeps no workflows."""
        return WorkflowEngine(self.platform)

    @property
    def clock(self) -> Clock:
        return self.platform.clock

    async def close(self) -> None:
        """Close the Platform if it was built for these operations."""
        if self._owns_platform:
            await self.platform.close()


_: type[Operations] = LocalOperations
