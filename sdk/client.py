"""``Client``: publish tasks and inspect them, straight on the store and transport.

A Client is built complete from settings (no I/O happens until the first call) and is
closed by ``async with`` or ``close()``::

    async with Client.connect("sqlite:///atp.db") as client:
        published = await client.publish("orders.close", {"order_id": 42}, delay="30m")
        record = await client.get(published.id)

Every method is a thin, typed call into the client's ``Operations``: ``TaskService``,
``ScheduleService`` and ``WorkflowEngine`` on a Platform in this process (the same ones the
CLI and the REST and gRPC adapters use, so input is validated the same way everywhere), or
an ``atp server`` reached over REST or gRPC. Publish options (``PublishOptions``) become a
``PublishRequest`` in one place, ``publish_request``, which every way in goes through.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Unpack

from atp.core.cron.service import define_schedule
from atp.core.errors import ConfigError, InvalidInput
from atp.core.fleet import Fleet
from atp.core.flow.breaker import BreakerState
from atp.core.flow.rules import Limit, Rate, parse_rate
from atp.core.flow.service import FlowStatus
from atp.core.model import FINAL_STATES, JSON, State, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Page
from atp.core.schedules import Misfire, Overlap, Schedule
from atp.core.service import Published, PublishRequest
from atp.core.settings import Settings
from atp.core.urls import mask
from atp.sdk._courier import Courier
from atp.sdk._local import LocalOperations
from atp.sdk._operations import Operations
from atp.sdk._options import Duration, Instant, PublishOptions, publish_request, seconds
from atp.sdk._remote import REMOTE_SCHEMES, open_remote
from atp.sdk._workflows import WorkflowMethods
from atp.sdk.outbox import Outbox

if TYPE_CHECKING:
    from atp.sdk._grpc import RemoteDelivery

__all__ = [
    "Client",
    "Duration",
    "Instant",
    "PublishOptions",
    "PublishRequest",
    "Published",
    "publish_request",
]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

WAIT_FIRST_POLL = 0.05
"""Seconds before ``wait`` looks at a task again the first time; it grows from there."""
WAIT_MAX_POLL = 1.0
"""The longest pause between two looks of ``wait``."""


class Client(WorkflowMethods):
    """Publishes tasks and inspects, cancels and requeues them, over one Platform.

    Build it with ``Client.connect(...)``, or ``Client(platform)`` to share a Platform
    that something else owns (the client then never closes it). A client may be used by
    any number of tasks of one event loop at once.
    """

    def __init__(self, platform: Platform | Operations, *, owns_platform: bool = False) -> None:
        """A client over ``platform`` (closed by ``close`` if ``owns_platform``), or over
        the ``Operations`` of an ``atp server`` (what ``connect`` builds for its URL)."""
        self._courier: Courier | None = None
        if isinstance(platform, Platform):
            self._platform: Platform | None = platform
            local = LocalOperations(platform, owns_platform=owns_platform)
            self._ops: Operations = local
            if platform.settings.outbox:
                outbox = Outbox(platform.settings.outbox, platform.clock)
                self._courier = Courier(outbox, local.tasks, platform.clock)
        else:
            self._platform, self._ops = None, platform
        self._closed = False

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        plugins: PluginManager | None = None,
        clock: Clock | None = None,
        token: str | None = None,
    ) -> Client:
        """Build a client from settings; no connection is opened until the first call.

        ``url`` is a task store URL (``sqlite:///atp.db``, ``redis://...``) overriding the
        ``store`` setting. Without ``settings`` they come from ``Settings.load()``, so
        ``atp.toml`` and ``ATP_*`` variables apply. Raises ConfigError for a URL no plugin
        serves. This process runs no workers: with a process-local transport the tasks
        stay in the store for the scheduler of ``atp dev`` to dispatch.

        ``http://`` / ``https://`` (REST) or ``grpc://host:port`` URLs reach an ``atp
        server`` instead, authenticated by the bearer ``token``: the task, schedule and
        workflow methods work the same and server errors come back as the same atp
        errors.
        """
        if url is not None and url.partition("://")[0] in REMOTE_SCHEMES:
            return cls(open_remote(url, token, clock))
        if settings is None:
            settings = Settings.load(store=url)
        elif url is not None:
            settings = settings.replace(store=url)
        platform = Platform.build(settings, plugins=plugins, clock=clock)
        return cls(platform, owns_platform=True)

    @property
    def platform(self) -> Platform:
        """The Platform this client works on; ConfigError for a client of an atp server."""
        if self._platform is None:
            raise ConfigError(f"{self!r} reaches an atp server: it has no platform")
        return self._platform

    # -- publishing ----------------------------------------------------------------------

    @staticmethod
    def request(
        subject: str, payload: JSON = None, **options: Unpack[PublishOptions]
    ) -> PublishRequest:
        """Build one request for ``publish_many``; arguments as for ``publish``.

        Raises InvalidInput for a naive datetime or a malformed duration.
        """
        return publish_request(subject, payload, **options)

    async def publish(
        self, subject: str, payload: JSON = None, **options: Unpack[PublishOptions]
    ) -> Published:
        """Publish one task to ``subject``; return its id once the store has it, or, with an
        ``outbox`` set and the store unreachable, once this host's outbox has it
        (``in_outbox``: accepted locally, created in the store when the outbox delivers it).
        Without an outbox, an unreachable store raises BackendUnavailable within the
        store's timeout.

        ``delay`` or ``run_at`` (not both) schedule it for later; ``idempotency_key``
        returns the existing task's id, with ``created=False``, if the key was used on
        this subject within the idempotency window. ``max_attempts``, ``timeout`` and
        ``retry`` override the handler's defaults for this task; higher ``priority`` runs
        first where the transport can order; ``headers`` travel with the task.
        ``concurrency_key`` and ``rate_key`` put it under the limits set for those keys
        (``set_limit(..., key=True)``); ``group_key`` names its fair group, woken by the
        group's weight while tasks wait behind a full slot. With ``idempotency_key``, at most one of
        ``debounce`` (replace the pending task; run this long after the last publish),
        ``throttle`` (one task per period) and ``unique`` (KeyActive while the key's task
        is queued or running). Raises InvalidInput (nothing is written) for bad input.
        The options: ``PublishOptions``.
        """
        request = publish_request(subject, payload, **options)
        (published,) = await self._publish([request])
        return published

    async def publish_many(self, requests: Iterable[PublishRequest]) -> builtins.list[Published]:
        """Publish a batch in one store call; results in the order of ``requests``.

        All or nothing on bad input: one invalid request raises InvalidInput and no task
        of the batch is written. With an ``outbox``, an unreachable store's batch is kept
        whole, as for ``publish``.
        """
        return await self._publish(builtins.list(requests))

    @property
    def outbox(self) -> Outbox | None:
        """The outbox this client keeps publishes in while its store is away (the
        ``outbox`` setting), to inspect; None without one."""
        return None if self._courier is None else self._courier.outbox

    async def flush_outbox(self) -> int:
        """Deliver the outbox now, oldest first; return how many publishes the store took.

        0 without an outbox or while another process delivers it; BackendUnavailable if
        the store is still unreachable (what is undelivered stays kept).
        """
        return 0 if self._courier is None else await self._courier.flush()

    async def _publish(self, requests: builtins.list[PublishRequest]) -> builtins.list[Published]:
        if self._courier is None:
            return await self._ops.tasks.publish(requests)
        return await self._courier.publish(requests)

    # -- inspecting ----------------------------------------------------------------------

    async def get(self, task_id: str) -> TaskRecord:
        """Return the task's record as the store has it now; NotFound for an unknown id."""
        return await self._ops.tasks.get(task_id)

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
        return await self._ops.tasks.query(
            subject=subject, states=_states(states), cursor=cursor, limit=limit
        )

    async def counts(self) -> dict[tuple[str, State], int]:
        """Return how many tasks each (subject, state) holds; zero counts are left out."""
        return await self._ops.tasks.counts()

    async def wait(self, task_id: str, timeout: Duration | None = None) -> TaskRecord:
        """Return the task's record once it is SUCCEEDED, DEAD or CANCELLED.

        Looks at the task again and again, ever less often (up to once a second), on the
        platform's clock. Raises TimeoutError if it is not final after ``timeout`` (None:
        wait for ever), NotFound for an unknown id.
        """
        clock = self._ops.clock
        limit = math.inf if timeout is None else seconds(timeout, "timeout")
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
        return await self._ops.tasks.cancel(task_id)

    async def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page:
        """Return one page of DEAD tasks, newest first; each record has its error history."""
        return await self._ops.tasks.dead_letters(subject=subject, cursor=cursor, limit=limit)

    async def requeue(
        self, task_id: str, *, delay: Duration | None = None, payload: JSON | _Unset = UNSET
    ) -> TaskRecord:
        """Give a DEAD task a new life with its attempts reset, after ``delay``.

        ``payload`` replaces the task's payload when given (``None`` included). The error
        history is kept. NotFound for an unknown id; StateConflict unless it is DEAD.
        """
        replace = not isinstance(payload, _Unset)
        return await self._ops.tasks.requeue(
            task_id,
            delay=None if delay is None else seconds(delay, "delay"),
            payload=payload if replace else None,
            replace_payload=replace,
        )

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete DEAD tasks (these ids, or every one); return how many were deleted.

        Tasks in other states are never deleted by this call.
        """
        if isinstance(ids, str):
            raise InvalidInput("purge takes a list of ids, not one string")
        return await self._ops.tasks.purge(None if ids is None else builtins.list(ids))

    # -- cron schedules ------------------------------------------------------------------

    async def add_schedule(
        self,
        name: str,
        expression: str,
        subject: str,
        payload: JSON = None,
        *,
        tz: str = "UTC",
        misfire: Misfire | str = Misfire.ONCE,
        overlap: Overlap | str = Overlap.ALLOW,
    ) -> Schedule:
        """Store a new cron schedule; it first fires at its next tick after now.

        ``expression``: five fields, six with seconds first, or a macro (``@hourly``),
        read in the IANA time zone ``tz``. ``misfire`` (after downtime): ``skip``,
        ``once`` or ``all``; ``overlap``: ``allow``, or ``skip`` a tick while the last
        firing's task has not finished. InvalidInput for a bad expression, time zone,
        name or subject; AlreadyExists for a taken name. Nothing is stored on an error.
        """
        schedule = define_schedule(
            name, expression, subject, payload=payload, tz=tz, misfire=misfire, overlap=overlap
        )
        return await self._ops.schedules.add(schedule)

    async def get_schedule(self, name: str) -> Schedule:
        """Return the schedule; NotFound for an unknown name."""
        return await self._ops.schedules.get(name)

    async def list_schedules(self) -> builtins.list[Schedule]:
        """Return every schedule, by name."""
        return await self._ops.schedules.list()

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop firing the schedule until resumed. NotFound for an unknown name."""
        return await self._ops.schedules.pause(name)

    async def resume_schedule(self, name: str) -> Schedule:
        """Fire the schedule again from its next tick; ticks while paused are not fired."""
        return await self._ops.schedules.resume(name)

    async def trigger_schedule(self, name: str) -> Published:
        """Publish the schedule's task now, once, outside its timetable."""
        return await self._ops.schedules.trigger(name)

    async def remove_schedule(self, name: str) -> None:
        """Delete the schedule; the tasks it fired stay. NotFound for an unknown name."""
        await self._ops.schedules.remove(name)

    # -- flow control ----------------------------------------------------------------------

    async def set_limit(
        self,
        target: str,
        *,
        key: bool = False,
        concurrency: int | None = None,
        rate: Rate | str | None = None,
        burst: int | None = None,
        window: Rate | str | None = None,
        weight: int | None = None,
    ) -> Limit:
        """Create or replace the limit on ``target`` and return it as stored.

        ``target`` is a subject pattern (``payments.*``: the matching tasks share one
        budget), or with ``key`` a key pattern (``customer:42``, ``customer:*``, ``*``:
        each key its own budget). ``concurrency``: tasks running at once across every
        worker; ``rate`` (``"10/s"`` or a Rate) with ``burst``: a token bucket; ``window``
        (``"100/m"``): at most that many starts in any such period; ``weight`` (key rules
        only, 1 to 1000): the share of wake-ups of the fair groups (``group_key``) it
        matches. InvalidInput for a malformed rule, nothing stored.
        """
        limit = Limit(
            target,
            key=key,
            concurrency=concurrency,
            rate=None if rate is None else parse_rate(rate, "rate"),
            burst=burst,
            window=None if window is None else parse_rate(window, "window"),
            weight=weight,
        )
        return await self._ops.flow.set_limit(limit)

    async def remove_limit(self, target: str, *, key: bool = False) -> None:
        """Remove the limit on ``target`` (a key pattern when ``key``); NotFound if none."""
        await self._ops.flow.remove_limit(target, key=key)

    async def limits(self) -> FlowStatus:
        """Return every limit and paused pattern, and how many tasks wait behind each."""
        return await self._ops.flow.status()

    async def pause(self, pattern: str) -> bool:
        """Stop workers taking tasks of subjects matching ``pattern`` until ``resume``;
        running tasks finish. Return False if it was paused already."""
        return await self._ops.flow.pause(pattern)

    async def resume(self, pattern: str) -> int:
        """Resume a paused ``pattern``; return how many held tasks woke. NotFound if it is
        not paused; a subject another paused pattern matches stays held."""
        return await self._ops.flow.resume(pattern)

    # -- the fleet -------------------------------------------------------------------------

    async def workers(self) -> Fleet:
        """Return the live workers (each as it last announced itself, gone once its
        ``registry_ttl`` passed without an announcement) and the scheduler's leader."""
        return await self._ops.fleet.workers()

    async def breakers(self) -> builtins.list[BreakerState]:
        """Return every circuit breaker not closed, and every closed one that counted
        lately, by key; ConfigError if the store keeps none."""
        return await self._ops.fleet.breakers()

    # -- consuming remotely ----------------------------------------------------------------

    def retrieve(
        self,
        pattern: str,
        *,
        group: str = "default",
        max_in_flight: int = 16,
        lease: float | None = None,
    ) -> AsyncIterator[RemoteDelivery]:
        """Lease tasks of ``pattern`` over gRPC (a ``grpc://`` client only); each delivery
        has ``ack``, ``nack`` and ``heartbeat``. See ``GrpcConsumer.retrieve``."""
        consumer = self._ops.consumer
        if consumer is None:
            raise ConfigError("retrieve needs a client connected with a grpc:// URL")
        return consumer.retrieve(pattern, group=group, max_in_flight=max_in_flight, lease=lease)

    # -- lifetime ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connections this client opened (its platform's if it built it);
        idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._courier is not None:
            await self._courier.close()
        await self._ops.close()

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
        if self._platform is None:
            return f"Client(remote={self._ops!r})"
        settings = self._platform.settings
        return f"Client(store={mask(settings.store)!r}, transport={mask(settings.transport)!r})"


def _states(states: State | str | Iterable[State | str] | None) -> builtins.list[State] | None:
    if states is None:
        return None
    items: Iterable[State | str] = [states] if isinstance(states, str) else states
    try:
        return [State(str(state).upper()) for state in items]
    except ValueError as exc:
        known = ", ".join(State)
        raise InvalidInput(f"unknown task state in {states!r}; states are {known}") from exc
