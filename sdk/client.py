"""``Client``: publish tasks and inspect them, straight on the store and transport.

A Client is built complete from settings (no I/O happens until the first call) and is
closed by ``async with`` or ``close()``::

    async with Client.connect("sqlite:///atp.db") as client:
        published = await client.publish("orders.close", {"order_id": 42}, delay="30m")
        record = await client.get(published.id)

Every method is a thin, typed call into ``TaskService``, the same operations the CLI and
the REST and gRPC adapters use, so input is validated the same way everywhere.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Final, TypeAlias

from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.model import FINAL_STATES, JSON, RetryPolicy, State, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Page
from atp.core.service import Published, PublishRequest, TaskService
from atp.core.settings import Settings

__all__ = ["Client", "Duration", "Instant", "PublishRequest", "Published"]

Duration: TypeAlias = timedelta | float | str
"""A length of time: a ``timedelta``, seconds as a number, or text such as ``"30s"``."""
Instant: TypeAlias = datetime | float
"""A point in time: a timezone-aware ``datetime``, or seconds since the Unix epoch."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

WAIT_FIRST_POLL = 0.05
"""Seconds before ``wait`` looks at a task again the first time; it grows from there."""
WAIT_MAX_POLL = 1.0
"""The longest pause between two looks of ``wait``."""


class Client:
    """Publishes tasks and inspects, cancels and requeues them, over one Platform.

    Build it with ``Client.connect(...)``, or ``Client(platform)`` to share a Platform
    that something else owns (the client then never closes it). A client may be used by
    any number of tasks of one event loop at once.
    """

    def __init__(self, platform: Platform, *, owns_platform: bool = False) -> None:
        self.platform = platform
        self._service = TaskService(platform)
        self._owns_platform = owns_platform
        self._closed = False

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        plugins: PluginManager | None = None,
        clock: Clock | None = None,
    ) -> Client:
        """Build a client from settings; no connection is opened until the first call.

        ``url`` is a task store URL (``sqlite:///atp.db``, ``redis://...``) overriding the
        ``store`` setting. Without ``settings`` they come from ``Settings.load()``, so
        ``atp.toml`` and ``ATP_*`` variables apply. Raises ConfigError for a URL no plugin
        serves. This process runs no workers: with a process-local transport the tasks
        stay in the store for the scheduler of ``atp dev`` to dispatch.
        """
        if settings is None:
            settings = Settings.load(store=url)
        elif url is not None:
            settings = settings.replace(store=url)
        platform = Platform.build(settings, plugins=plugins, clock=clock)
        return cls(platform, owns_platform=True)

    # -- publishing ----------------------------------------------------------------------

    @staticmethod
    def request(
        subject: str,
        payload: JSON = None,
        *,
        delay: Duration | None = None,
        run_at: Instant | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_attempts: int | None = None,
        timeout: Duration | None = None,
        priority: int = 0,
        retry: RetryPolicy | None = None,
    ) -> PublishRequest:
        """Build one request for ``publish_many``; arguments as for ``publish``.

        Raises InvalidInput for a naive datetime or a malformed duration.
        """
        return PublishRequest(
            subject=subject,
            payload=payload,
            delay=None if delay is None else _seconds(delay, "delay"),
            run_at=None if run_at is None else _epoch(run_at),
            idempotency_key=idempotency_key,
            headers=dict(headers or {}),
            max_attempts=max_attempts,
            timeout=None if timeout is None else _seconds(timeout, "timeout"),
            priority=priority,
            retry=retry,
        )

    async def publish(
        self,
        subject: str,
        payload: JSON = None,
        *,
        delay: Duration | None = None,
        run_at: Instant | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_attempts: int | None = None,
        timeout: Duration | None = None,
        priority: int = 0,
        retry: RetryPolicy | None = None,
    ) -> Published:
        """Publish one task to ``subject``; return its id once the store has it.

        ``delay`` or ``run_at`` (not both) schedule it for later; ``idempotency_key``
        returns the existing task's id, with ``created=False``, if the key was used within
        the idempotency window. ``max_attempts``, ``timeout`` and ``retry`` override the
        handler's defaults for this task; higher ``priority`` runs first where the
        transport can order. Raises InvalidInput (nothing is written) for bad input.
        """
        request = self.request(
            subject,
            payload,
            delay=delay,
            run_at=run_at,
            idempotency_key=idempotency_key,
            headers=headers,
            max_attempts=max_attempts,
            timeout=timeout,
            priority=priority,
            retry=retry,
        )
        (published,) = await self._service.publish([request])
        return published

    async def publish_many(self, requests: Iterable[PublishRequest]) -> builtins.list[Published]:
        """Publish a batch in one store call; results in the order of ``requests``.

        All or nothing on bad input: one invalid request raises InvalidInput and no task
        of the batch is written.
        """
        return await self._service.publish(builtins.list(requests))

    # -- inspecting ----------------------------------------------------------------------

    async def get(self, task_id: str) -> TaskRecord:
        """Return the task's record as the store has it now; NotFound for an unknown id."""
        return await self._service.get(task_id)

    async def list(
        self,
        *,
        subject: str | None = None,
        states: State | str | Iterable[State | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """Return one page of tasks, newest first, filtered by subject pattern and states.

        Pass the page's ``next_cursor`` as ``cursor`` for the next page.
        """
        return await self._service.query(
            subject=subject, states=_states(states), cursor=cursor, limit=limit
        )

    async def counts(self) -> dict[tuple[str, State], int]:
        """Return how many tasks each (subject, state) holds; zero counts are left out."""
        return await self._service.counts()

    async def wait(self, task_id: str, timeout: Duration | None = None) -> TaskRecord:
        """Return the task's record once it is SUCCEEDED, DEAD or CANCELLED.

        Looks at the task again and again, ever less often (up to once a second), on the
        platform's clock. Raises TimeoutError if it is not final after ``timeout`` (None:
        wait for ever), NotFound for an unknown id.
        """
        clock = self.platform.clock
        limit = math.inf if timeout is None else _seconds(timeout, "timeout")
        deadline = clock.now() + limit
        pause = WAIT_FIRST_POLL
        while True:
            record = await self.get(task_id)
            if record.state in FINAL_STATES:
                return record
            left = deadline - clock.now()
            if left <= 0:
                raise TimeoutError(f"task {task_id!r} is still {record.state} after {limit:g}s")
            await clock.sleep(min(pause, left))
            pause = min(pause * 2, WAIT_MAX_POLL)

    # -- changing ------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a task that has not finished, and return its record.

        A SCHEDULED or READY task is CANCELLED at once; a RUNNING one is asked to stop and
        is CANCELLED when its worker next checks (its record says ``cancel_requested``).
        NotFound for an unknown id; StateConflict, changing nothing, for a finished task.
        """
        return await self._service.cancel(task_id)

    async def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page:
        """Return one page of DEAD tasks, newest first; each record has its error history."""
        return await self._service.dead_letters(subject=subject, cursor=cursor, limit=limit)

    async def requeue(
        self, task_id: str, *, delay: Duration | None = None, payload: JSON | _Unset = UNSET
    ) -> TaskRecord:
        """Give a DEAD task a new life with its attempts reset, after ``delay``.

        ``payload`` replaces the task's payload when given (``None`` included). The error
        history is kept. NotFound for an unknown id; StateConflict unless it is DEAD.
        """
        replace = not isinstance(payload, _Unset)
        return await self._service.requeue(
            task_id,
            delay=None if delay is None else _seconds(delay, "delay"),
            payload=payload if replace else None,
            replace_payload=replace,
        )

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete DEAD tasks (these ids, or every one); return how many were deleted.

        Tasks in other states are never deleted by this call.
        """
        if isinstance(ids, str):
            raise InvalidInput("purge takes a list of ids, not one string")
        return await self._service.purge(None if ids is None else builtins.list(ids))

    # -- lifetime ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the platform's connections if this client built them; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_platform:
            await self.platform.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        settings = self.platform.settings
        return f"Client(store={settings.store!r}, transport={settings.transport!r})"


def _seconds(value: Duration, what: str) -> float:
    """Seconds in a timedelta, a number or a duration text; InvalidInput otherwise."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return parse_duration(value, what)


def _epoch(value: Instant) -> float:
    """Seconds since the epoch of an aware datetime or a number; InvalidInput otherwise."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(
                f"run_at {value.isoformat()} has no timezone: pass an aware datetime, "
                "such as datetime.now(timezone.utc)"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"run_at must be a datetime or seconds since the epoch, got {value!r}")
    return float(value)


def _states(states: State | str | Iterable[State | str] | None) -> builtins.list[State] | None:
    if states is None:
        return None
    items: Iterable[State | str] = [states] if isinstance(states, str) else states
    try:
        return [State(str(state).upper()) for state in items]
    except ValueError as exc:
        known = ", ".join(State)
        raise InvalidInput(f"unknown task state in {states!r}; states are {known}") from exc
