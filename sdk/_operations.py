"""What a ``Client`` runs its calls on: ``Operations``, in this process or on a server.

``LocalOperations`` (``atp.sdk._local``) runs them on a Platform with ``TaskService``,
``ScheduleService`` and ``WorkflowEngine``; ``HttpRemote`` and ``GrpcRemote`` send them to
an ``atp server``. The protocols state the signatures once; each implementation has one
typed assignment that mypy checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol

from atp.core.fleet import Fleet
from atp.core.flow.breaker import BreakerState
from atp.core.flow.rules import Limit
from atp.core.flow.service import FlowStatus
from atp.core.model import JSON, State, TaskRecord
from atp.core.ports import Clock, Page
from atp.core.schedules import Schedule
from atp.core.service import Published, PublishRequest
from atp.core.workflows.definition import Definition
from atp.core.workflows.runs import Run, RunPage, RunState

if TYPE_CHECKING:
    from atp.sdk._grpc import RemoteDelivery

__all__ = [
    "Consumer",
    "FleetOperations",
    "FlowOperations",
    "Operations",
    "ScheduleOperations",
    "TaskOperations",
    "WorkflowOperations",
]


class TaskOperations(Protocol):
    """The task operations, as ``TaskService`` offers them."""

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]: ...

    async def get(self, task_id: str) -> TaskRecord: ...

    async def cancel(self, task_id: str) -> TaskRecord: ...

    async def query(
        self,
        *,
        subject: str | None = None,
        states: Sequence[State] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page: ...

    async def counts(self) -> dict[tuple[str, State], int]: ...

    async def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page: ...

    async def requeue(
        self,
        task_id: str,
        *,
        delay: float | None = None,
        payload: JSON = None,
        replace_payload: bool = False,
    ) -> TaskRecord: ...

    async def purge(self, ids: Sequence[str] | None = None) -> int: ...


class ScheduleOperations(Protocol):
    """The cron schedule operations, as ``ScheduleService`` offers them."""

    async def add(self, schedule: Schedule) -> Schedule: ...

    async def get(self, name: str) -> Schedule: ...

    async def list(self) -> list[Schedule]: ...

    async def pause(self, name: str) -> Schedule: ...

    async def resume(self, name: str) -> Schedule: ...

    async def trigger(self, name: str) -> Published: ...

    async def remove(self, name: str) -> None: ...


class FlowOperations(Protocol):
    """The flow-control operations, as ``FlowService`` offers them."""

    async def status(self) -> FlowStatus: ...

    async def set_limit(self, limit: Limit) -> Limit: ...

    async def remove_limit(self, target: str, *, key: bool = False) -> None: ...

    async def pause(self, pattern: str) -> bool: ...

    async def resume(self, pattern: str) -> int: ...


class FleetOperations(Protocol):
    """The fleet's reads, as ``FleetService`` offers them."""

    async def workers(self) -> Fleet: ...

    async def breakers(self) -> list[BreakerState]: ...


class WorkflowOperations(Protocol):
    """The workflow operations, as ``WorkflowEngine`` offers them."""

    async def register(self, definitions: Sequence[Definition]) -> list[bool]: ...

    async def definition(self, name: str, version: int | None = None) -> Definition: ...

    async def definitions(self) -> list[Definition]: ...

    async def start(
        self,
        name: str,
        input: JSON = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> Run: ...

    async def signal(self, run_id: str, name: str, payload: JSON = None) -> Run: ...

    async def get(self, run_id: str) -> Run: ...

    async def list(
        self,
        *,
        workflow: str | None = None,
        states: Sequence[RunState | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> RunPage: ...

    async def cancel(self, run_id: str) -> Run: ...


class Consumer(Protocol):
    """Consuming from outside a worker: an optional capability (only gRPC has it)."""

    def retrieve(
        self,
        pattern: str,
        *,
        group: str = "default",
        max_in_flight: int = 16,
        lease: float | None = None,
    ) -> AsyncIterator[RemoteDelivery]: ...


class Operations(Protocol):
    """Everything a Client calls, in three parts, plus what it needs around them."""

    @property
    def tasks(self) -> TaskOperations: ...

    @property
    def schedules(self) -> ScheduleOperations: ...

    @property
    def workflows(self) -> WorkflowOperations: ...

    @property
    def flow(self) -> FlowOperations: ...

    @property
    def fleet(self) -> FleetOperations: ...

    @property
    def consumer(self) -> Consumer | None:
        """The way to lease tasks remotely, or None where there is none."""
        ...

    @property
    def clock(self) -> Clock:
        """The clock ``Client.wait`` polls on."""
        ...

    async def close(self) -> None:
        """Release what these operations opened; a Platform only if they own it."""
        ...
