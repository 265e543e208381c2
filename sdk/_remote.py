"""What a Client needs from a remote connection, and how remote errors come back as atp's.

A remote connection (REST or gRPC) offers the operations of ``TaskService`` with the same
signatures, so ``Client`` calls them without knowing which one it has; its ``schedules``
and ``workflows`` offer those of ``ScheduleService`` and ``WorkflowEngine`` the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Protocol

from atp.core import errors
from atp.core.errors import AtpError, ConfigError, RateLimited
from atp.core.model import JSON, State, TaskRecord
from atp.core.ports import Page
from atp.core.schedules import Schedule
from atp.core.service import Published, PublishRequest
from atp.core.workflows.definition import Definition
from atp.core.workflows.runs import Run, RunPage, RunState

__all__ = [
    "PROBLEM_TYPE",
    "REMOTE_SCHEMES",
    "Remote",
    "RemoteSchedules",
    "RemoteWorkflows",
    "error_from",
    "open_remote",
]

PROBLEM_TYPE = "urn:atp:problem:"

_BY_SLUG: dict[str, type[AtpError]] = {
    kind.type_slug: kind
    for _, kind in inspect.getmembers(errors, inspect.isclass)
    if issubclass(kind, AtpError)
}


def error_from(problem_type: str, message: str, retry_after: float = 1.0) -> AtpError:
    """The atp error a problem type names; a plain AtpError for an unknown one."""
    kind = _BY_SLUG.get(problem_type.removeprefix(PROBLEM_TYPE), AtpError)
    if kind is RateLimited:
        return RateLimited(message, retry_after)
    return kind(message)


class RemoteSchedules(Protocol):
    """The schedule operations of a remote server, as ``ScheduleService`` offers them."""

    async def add(self, schedule: Schedule) -> Schedule: ...

    async def get(self, name: str) -> Schedule: ...

    async def list(self) -> list[Schedule]: ...

    async def pause(self, name: str) -> Schedule: ...

    async def resume(self, name: str) -> Schedule: ...

    async def trigger(self, name: str) -> Published: ...

    async def remove(self, name: str) -> None: ...


class RemoteWorkflows(Protocol):
    """The workflow operations of a remote server, as ``WorkflowEngine`` offers them."""

    async def register(self, definitions: Sequence[Definition]) -> list[bool]: ...

    async def definition(self, name: str, version: int | None = None) -> Definition: ...

    async def definitions(self) -> list[Definition]: ...

    async def start(
        self, name: str, input: JSON = None, *, version: int | None = None,
        run_id: str | None = None,
    ) -> Run: ...  # fmt: skip

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


class Remote(Protocol):
    """The operations of a remote atp server, as ``TaskService`` offers them locally;
    ``schedules`` and ``workflows`` hold the schedule and workflow operations."""

    @property
    def schedules(self) -> RemoteSchedules: ...

    @property
    def workflows(self) -> RemoteWorkflows: ...

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

    async def close(self) -> None: ...


REMOTE_SCHEMES = frozenset({"http", "https", "grpc"})
"""URL schemes that reach an ``atp server`` rather than a backend."""


def open_remote(url: str, token: str | None) -> Remote:
    """The REST (``http(s)://``) or gRPC (``grpc://host:port``) connection for ``url``.

    Raises ConfigError when the extra it needs (``atp[http]``, ``atp[grpc]``) is missing.
    """
    scheme, _, rest = url.partition("://")
    try:
        if scheme == "grpc":
            from atp.sdk._grpc import GrpcRemote

            return GrpcRemote(rest.rstrip("/"), token)
        from atp.sdk._http import HttpRemote

        return HttpRemote(url, token)
    except ImportError as exc:
        extra = "grpc" if scheme == "grpc" else "http"
        raise ConfigError(f"{url!r} needs the {extra} extra: pip install 'atp[{extra}]'") from exc
