"""Producer and operator operations: publish, get, cancel, list, dead letters.

Every way in (the SDK Client, the CLI, the REST and gRPC adapters) calls these, so input
is validated once, here, before anything is written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson

from atp.core import codec
from atp.core.batching import GroupCommit
from atp.core.errors import (
    AtpError,
    ConfigError,
    IdempotencyConflict,
    InvalidInput,
    KeyActive,
    KeyConflict,
    NotFound,
    PayloadTooLarge,
    StateConflict,
)
from atp.core.flow.admission import Gatekeeper
from atp.core.flow.rules import validate_key
from atp.core.ids import is_id, new_id
from atp.core.listing import check_query
from atp.core.model import (
    FINAL_STATES,
    JSON,
    Dedup,
    DedupMode,
    RetryPolicy,
    State,
    Task,
    TaskRecord,
)
from atp.core.platform import Platform
from atp.core.ports import Created, FusingStore, Page, Requeue, TaskQuery
from atp.core.quoting import quote
from atp.core.subjects import validate_pattern, validate_subject

__all__ = ["PublishRequest", "Published", "TaskService"]

log = logging.getLogger("atp.service")

MAX_KEY_LENGTH = 255
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16_384
MAX_ATTEMPTS_LIMIT = 1000
MAX_PRIORITY = 2**31 - 1
MAX_PAGE = 1000
MAX_BATCH = 10_000
_EARLIEST = 946_684_800.0  # 2000-01-01: a run_at before this is a unit mistake
CALL_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
"""Headers that describe one call, not the task: an idempotency key's comparison leaves
them out (ADR 0034)."""


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """What a producer asks for. ``delay`` and ``run_at`` are exclusive; both None: now."""

    subject: str
    payload: JSON = None
    delay: float | None = None
    run_at: float | None = None
    idempotency_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    max_attempts: int | None = None
    timeout: float | None = None
    priority: int = 0
    retry: RetryPolicy | None = None
    schedule: str | None = None
    """The cron schedule firing this task, if one is (set by the scheduler)."""
    tick: float | None = None
    """The schedule's tick this task fires, seconds since the epoch."""
    workflow_run: str | None = None
    """The workflow run this task is a step of, if any (set by the workflow engine)."""
    step: str | None = None
    """The name of that run's step."""
    concurrency_key: str | None = None
    """Tasks of one key run at most the key's limit at once (ADR 0038)."""
    rate_key: str | None = None
    """Tasks of one key share the key's rate limits."""
    group_key: str | None = None
    """The fair group (a tenant): waiting tasks are woken by group, by weight (ADR 0039)."""
    dedup: Dedup | None = None
    """Debounce, throttle or unique on ``idempotency_key``; debounce sets the run time."""
    task_id: str | None = None
    """The id the task gets, chosen by the producer (an id of ``new_id``'s form); None, the
    default, for a new one. A producer's outbox gives one before its first try, so that a
    publish whose outcome was unknown is delivered again as the same task (ADR 0043). The
    REST and gRPC APIs do not carry it."""


@dataclass(frozen=True, slots=True)
class Published:
    """The answer to one publish: the task's id, and False if an idempotency key matched."""

    id: str
    created: bool
    run_at: float
    replaced: str | None = None
    """Debounce: the pending task this one replaced (now cancelled)."""
    in_outbox: bool = False
    """Accepted locally: the store could not be reached and the task waits in this host's
    outbox, which creates it under ``id`` once the store is back (ADR 0043)."""


class TaskService:
    """The operations on tasks, over one Platform."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._store = platform.store
        self._clock = platform.clock
        self._settings = platform.settings
        self._dispatcher = platform.dispatcher
        self._commit: GroupCommit[Task, Created] = GroupCommit(self._accept, MAX_BATCH)
        self._slot_lease = self._settings.lease
        self._gate = Gatekeeper(platform.store, self._clock, "publisher", reserve=self._slot_lease)
        """How long a slot taken at publish is held for the task's worker to claim it; one
        claimed later is admitted again (or held) by the worker, so the limit holds."""

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
        """Accept tasks: validate all, create all in one store call, then dispatch.

        Bad input raises InvalidInput and writes nothing. Once the store has created a
        task it is accepted: a failed publish to the transport is left to the scheduler's
        forwarder, never reported as a failure to the producer. Calls made while one is
        in the store go together in the next store call (a group commit): many
        producers publishing one task each share round trips.
        """
        if len(requests) > MAX_BATCH:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH} tasks, got {len(requests)}")
        now = self._clock.now()
        tasks = [self._build(request, now) for request in requests]
        keyed = _keyed(requests, tasks)
        given = {i: dict(tasks[i].headers) for i in keyed}  # before plugins add theirs
        if keyed:
            _refuse_repeats(tasks, given)
        created = await self._commit.run(self._with_plugin_headers(tasks))
        if keyed:
            await self._refuse_mismatches(tasks, given, created)
        _refuse_active(tasks, created)
        return [
            Published(result.id, result.created, result.run_at, result.replaced)
            for result in created
        ]

    def check(self, requests: Sequence[PublishRequest]) -> None:
        """Raise what ``publish`` would refuse ``requests`` for before writing (InvalidInput,
        IdempotencyConflict within the call); write nothing."""
        if len(requests) > MAX_BATCH:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH} tasks, got {len(requests)}")
        now = self._clock.now()
        tasks = [self._build(request, now) for request in requests]
        _refuse_repeats(tasks, {i: dict(tasks[i].headers) for i in _keyed(requests, tasks)})

    @property
    def adds_headers(self) -> bool:
        """Whether plugins add headers (a trace context) to every published task."""
        return self._platform.emit.wants("atp_task_headers")

    async def _refuse_mismatches(
        self, tasks: list[Task], given: dict[int, dict[str, str]], created: list[Created]
    ) -> None:
        """Raise IdempotencyConflict if a key matched a task published with other
        parameters. Only duplicates are read, in one store call; a matched task that is
        gone (pruned while its key lives) cannot be compared and stands as the answer."""
        matched = [i for i in given if not created[i].created]
        if not matched:
            return
        records = await self._store.get([created[i].id for i in matched])
        conflicts = [
            KeyConflict(i, record.id, fields)
            for i, record in zip(matched, records, strict=True)
            if record is not None
            and (fields := _differences(tasks[i], given[i], record.task, record.task.headers))
        ]
        if conflicts:
            raise _conflict(tasks, conflicts, created)

    async def _accept(self, tasks: list[Task]) -> list[Created]:
        """Create ``tasks`` (one or more callers') in one store call, then dispatch; a due
        task whose flow-control slot is full is created held, never dispatched (ADR 0039)."""
        now = self._clock.now()
        holding = None
        if self._gate.active:
            tasks = list(tasks)
            holding = await self._gate.hold_at_publish(tasks, now + self._slot_lease)
        created = await self._create(tasks, now)
        if holding is not None:
            await self._gate.after_publish(tasks, holding, [c.created for c in created])
            for i, due in holding.due.items():  # answer when it was due, not its backstop
                if created[i].created:
                    created[i] = dataclasses.replace(created[i], run_at=due)
        new = [task for task, result in zip(tasks, created, strict=True) if result.created]
        if new:
            self._platform.emit("atp_task_enqueued", tasks=new)
        ready = [task for task in new if task.run_at <= now]
        if self._platform.fused and ready:
            self._platform.emit("atp_task_dispatched", tasks=ready)
        elif self._platform.direct_publish:
            await self._dispatch(ready)
        return created

    async def get(self, task_id: str) -> TaskRecord:
        """Return the task's record; NotFound for an unknown id."""
        (record,) = await self._store.get([task_id])
        if record is None:
            raise NotFound(f"no task with id {quote(task_id)}")
        return record

    async def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a task that has not finished; a running one is asked to stop.

        Cancelling a cancelled task again is a no-op. NotFound for an unknown id;
        StateConflict, changing nothing, for a task that succeeded or is dead.
        """
        before = await self.get(task_id)
        if before.state is State.CANCELLED:
            return before
        if before.state in FINAL_STATES:
            raise _too_late(before)
        (record,) = await self._store.cancel([task_id], now=self._clock.now())
        if record is None:
            raise NotFound(f"no task with id {quote(task_id)}")
        if record.state is State.CANCELLED:
            self._platform.emit("atp_task_cancelled", record=record)
        elif record.state in FINAL_STATES:  # it finished between the two calls
            raise _too_late(record)
        return record

    async def query(
        self,
        *,
        subject: str | None = None,
        states: Sequence[State] | None = None,
        cursor: str | None = None,
        limit: int = 100,
        created_after: float | None = None,
        created_before: float | None = None,
        idempotency_key: str | None = None,
    ) -> Page:
        """List tasks, newest first, filtered by subject pattern, states, creation time
        (``created_after`` inclusive, ``created_before`` exclusive, to the millisecond)
        and the idempotency key a task of the exact ``subject`` holds now."""
        if subject is not None:
            validate_pattern(subject)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        query = TaskQuery(
            subject,
            frozenset(states) if states else None,
            cursor,
            limit,
            created_after=created_after,
            created_before=created_before,
            idempotency_key=_key(idempotency_key),
        )
        check_query(query)
        return await self._store.query(query)

    async def counts(self) -> dict[tuple[str, State], int]:
        """Return how many tasks each (subject, state) holds."""
        return await self._store.counts()

    async def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page:
        """List dead tasks, newest first."""
        return await self.query(subject=subject, states=[State.DEAD], cursor=cursor, limit=limit)

    async def requeue(
        self,
        task_id: str,
        *,
        delay: float | None = None,
        payload: JSON = None,
        replace_payload: bool = False,
    ) -> TaskRecord:
        """Give a dead task a new life, optionally later or with a new payload.

        NotFound for an unknown id; StateConflict, changing nothing, unless it is DEAD,
        or for one quarantined because its stored record cannot be decoded (ADR 0027).
        """
        now = self._clock.now()
        run_at = now + self._delay(delay) if delay is not None else now
        if replace_payload:
            self._check_payload(payload)
        before = await self.get(task_id)
        if before.state is not State.DEAD:
            raise StateConflict(
                f"task {quote(task_id)} is {before.state}, only DEAD tasks are requeued"
            )
        if codec.is_quarantined(before):  # it would only be quarantined again
            raise StateConflict(f"task {quote(task_id)} cannot be decoded: purge it instead")
        request = Requeue(task_id, run_at, payload, replace_payload)
        (record,) = await self._store.requeue([request], now=now)
        if record is None:  # purged between the two calls
            raise NotFound(f"no task with id {quote(task_id)}")
        return record

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead tasks (these ids, or all); return how many were deleted."""
        return await self._store.purge(ids)

    async def _create(self, tasks: list[Task], now: float) -> list[Created]:
        """Store the tasks; where the store is fused with the transport, the ready ones
        are published in the same call (one round trip)."""
        window = self._settings.idempotency_window
        if not self._platform.direct_publish:
            return await self._store.create(tasks, now=now, idempotency_window=window)
        ready_until = now + self._settings.ready_timeout
        if self._platform.fused:
            fused = cast(FusingStore, self._store)
            return await fused.create_and_publish(
                tasks, now=now, idempotency_window=window, ready_until=ready_until
            )
        return await self._store.create(
            tasks, now=now, idempotency_window=window, ready_until=ready_until
        )

    async def _dispatch(self, tasks: list[Task]) -> None:
        if not tasks:
            return
        try:
            await self._dispatcher.publish(tasks)
        except AtpError as exc:  # accepted all the same: the forwarder publishes them
            log.warning("publish of %d tasks failed, the forwarder takes them: %s", len(tasks), exc)

    def _build(self, request: PublishRequest, now: float) -> Task:
        validate_subject(request.subject)
        self._check_payload(request.payload)
        task = Task(
            id=new_id(now) if request.task_id is None else _task_id(request.task_id),
            subject=request.subject,
            payload=request.payload,
            headers=_headers(request.headers),
            idempotency_key=_key(request.idempotency_key),
            run_at=self._run_at(request, now),
            created_at=now,
            max_attempts=_attempts(request.max_attempts),
            retry=_retry(request.retry),
            timeout=_timeout(request.timeout),
            priority=_priority(request.priority),
            schedule=request.schedule,
            tick=request.tick,
            workflow_run=request.workflow_run,
            step=request.step,
        )
        flow = (request.concurrency_key, request.rate_key, request.group_key, request.dedup)
        if all(option is None for option in flow):
            return task
        return self._with_flow(task, request, now)

    def _with_flow(self, task: Task, request: PublishRequest, now: float) -> Task:
        """The task with its flow-control options, checked (ADR 0038)."""
        keys = {
            "concurrency_key": _flow_key(request.concurrency_key, "concurrency_key"),
            "rate_key": _flow_key(request.rate_key, "rate_key"),
            "group_key": _flow_key(request.group_key, "group_key"),
        }
        if any(keys.values()) and not self._gate.active:
            raise ConfigError(
                f"the store {type(self._store).__name__} keeps no flow-control ledger: "
                "concurrency_key, rate_key and group_key need one (memory, SQLite or Redis)"
            )
        dedup = request.dedup
        if dedup is None:
            return task.replace(**keys)
        if not isinstance(dedup, Dedup):
            raise InvalidInput(f"dedup must be a Dedup, got {quote(dedup)}")
        if task.idempotency_key is None:
            raise InvalidInput(f"dedup {dedup.mode} needs an idempotency key to work on")
        run_at = task.run_at
        if dedup.mode is DedupMode.DEBOUNCE:
            if request.delay is not None or request.run_at is not None:
                raise InvalidInput("debounce sets the run time itself: give no delay or run_at")
            run_at = now + cast(float, dedup.period)
        return task.replace(dedup=dedup, run_at=run_at, **keys)

    def _with_plugin_headers(self, tasks: list[Task]) -> list[Task]:
        """Merge the headers plugins add (a trace context) before the store sees the tasks.

        Each task is built once: its headers are the dict ``_build`` made for it, which
        nothing outside this call holds yet, so the additions go into that dict.
        """
        emit = self._platform.emit
        if not tasks or not emit.wants("atp_task_headers"):
            return tasks
        for added in emit.collect("atp_task_headers", tasks=tasks):
            if len(added) != len(tasks):
                log.error(
                    "a plugin returned %d header sets for %d tasks; ignored", len(added), len(tasks)
                )
                continue
            for task, extra in zip(tasks, added, strict=True):
                if extra:
                    cast(dict[str, str], task.headers).update(extra)
        return tasks

    def _check_payload(self, payload: JSON) -> None:
        size = len(codec.dumps(payload, "payload"))
        if size > self._settings.max_payload:
            raise PayloadTooLarge(
                f"payload is {size} bytes of JSON, the limit is {self._settings.max_payload}"
            )

    def _run_at(self, request: PublishRequest, now: float) -> float:
        if request.delay is not None and request.run_at is not None:
            raise InvalidInput("give either a delay or a run_at time, not both")
        if request.run_at is not None:
            return self._absolute(request.run_at, now)
        return now + self._delay(request.delay) if request.delay is not None else now

    def _delay(self, delay: float) -> float:
        if not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
            raise InvalidInput(f"delay must be a finite number of seconds >= 0, got {quote(delay)}")
        if delay > self._settings.max_delay:
            raise InvalidInput(
                f"delay of {delay:,.0f}s is over the limit of {self._settings.max_delay:,.0f}s"
            )
        return float(delay)

    def _absolute(self, run_at: float, now: float) -> float:
        if not isinstance(run_at, int | float) or not math.isfinite(run_at) or run_at < _EARLIEST:
            raise InvalidInput(f"run_at must be seconds since the Unix epoch, got {quote(run_at)}")
        if run_at - now > self._settings.max_delay:
            raise InvalidInput(f"run_at {quote(run_at)} is further ahead than max_delay allows")
        return float(run_at)


def _keyed(requests: Sequence[PublishRequest], tasks: list[Task]) -> list[int]:
    """The positions of the tasks whose parameters are compared when their key matches:
    a producer's keyed tasks. A cron firing's or a workflow step's key is derived by atp,
    and a second publish of it is the same firing (perhaps of an edited schedule), so it
    returns the existing task as before."""
    return [
        i
        for i, (request, task) in enumerate(zip(requests, tasks, strict=True))
        if task.idempotency_key is not None and request.schedule is None
        if request.workflow_run is None and task.dedup is None
    ]


def _refuse_active(tasks: list[Task], created: list[Created]) -> None:
    """Raise KeyActive for the unique tasks whose key names a task still active."""
    conflicts = [
        KeyConflict(i, result.id, ())
        for i, (task, result) in enumerate(zip(tasks, created, strict=True))
        if not result.created and task.dedup is not None and task.dedup.mode is DedupMode.UNIQUE
    ]
    if not conflicts:
        return
    message = "; ".join(
        f"key {quote(tasks[c.index].idempotency_key)} on {tasks[c.index].subject} is held by"
        f" task {c.task_id}, still queued or running"
        for c in conflicts
    )
    raise KeyActive(message, conflicts, _accepted(conflicts, created))


def _flow_key(value: str | None, what: str) -> str | None:
    return None if value is None else validate_key(value, what)


def _refuse_repeats(tasks: list[Task], given: dict[int, dict[str, str]]) -> None:
    """Raise IdempotencyConflict, before anything is written, if two items of one call
    share a subject and key but differ in their parameters."""
    first: dict[tuple[str, str | None], int] = {}
    conflicts: list[KeyConflict] = []
    parts: list[str] = []
    for i, headers in given.items():
        task = tasks[i]
        j = first.setdefault((task.subject, task.idempotency_key), i)
        if j != i and (fields := _differences(task, headers, tasks[j], given[j])):
            conflicts.append(KeyConflict(i, None, fields))
            parts.append(f"item {i} repeats the key of item {j} with another {', '.join(fields)}")
    if conflicts:
        raise IdempotencyConflict(
            f"idempotency key reused within one call: {'; '.join(parts)}; nothing was published",
            conflicts,
        )


def _differences(
    new: Task, given: Mapping[str, str], old: Task, old_headers: Mapping[str, str]
) -> tuple[str, ...]:
    """The parameters a producer gave that differ between a new task and an older one
    of its key; ``given`` are the headers the new task's producer gave.

    ``run_at`` is not compared: a retried "in 30 minutes" computes a new instant. Nor are
    the headers of one call (``CALL_HEADERS``) or those plugins added to the new task (a
    stored task holds its plugins' headers beside its producer's, unmarked).
    """
    fields = []
    if _canonical(new.payload) != _canonical(old.payload):
        fields.append("payload")
    added = {k for k, v in new.headers.items() if given.get(k) != v}
    if _producers(given, added) != _producers(old_headers, added):
        fields.append("headers")
    for name in ("max_attempts", "timeout", "priority", "retry"):
        if getattr(new, name) != getattr(old, name):
            fields.append(name)
    return tuple(fields)


def _conflict(
    tasks: list[Task], conflicts: list[KeyConflict], created: list[Created]
) -> IdempotencyConflict:
    """The error for keys that matched other tasks, naming what the call did accept."""
    parts = [
        f"key {quote(tasks[c.index].idempotency_key)} on {tasks[c.index].subject} belongs to"
        f" task {c.task_id}, published with another {', '.join(c.fields)}"
        for c in conflicts
    ]
    message = "; ".join(parts)
    if len(tasks) > 1:
        message = (
            f"{message} (items {', '.join(str(c.index) for c in conflicts)} refused; the"
            f" other {len(tasks) - len(conflicts)} items of the batch were accepted)"
        )
    return IdempotencyConflict(message, conflicts, _accepted(conflicts, created))


def _accepted(conflicts: list[KeyConflict], created: list[Created]) -> list[str | None]:
    """Per item of the call, the id accepted for it, None where refused; empty when
    nothing of the call was accepted."""
    refused = {c.index for c in conflicts}
    if len(created) <= len(refused):
        return []
    return [None if i in refused else result.id for i, result in enumerate(created)]


def _canonical(payload: JSON) -> bytes:
    """The payload as JSON with sorted keys: equal for equal values, whatever their order
    or a store's round trip (``True`` and ``1`` differ, as they do in JSON)."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _producers(headers: Mapping[str, str], added: set[str]) -> dict[str, str]:
    """``headers`` without those of one call or of plugins."""
    return {k: v for k, v in headers.items() if k not in CALL_HEADERS and k not in added}


def _too_late(record: TaskRecord) -> StateConflict:
    """The refusal to cancel a task that has already finished."""
    return StateConflict(
        f"task {quote(record.id)} is {record.state}, it can no longer be cancelled"
    )


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    if not headers and type(headers) is dict:  # the common case, without the ABC check
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidInput(f"headers must be an object of strings, got {quote(headers)}")
    if len(headers) > MAX_HEADERS:
        raise InvalidInput(f"at most {MAX_HEADERS} headers, got {len(headers)}")
    if not all(isinstance(k, str) and isinstance(v, str) and k for k, v in headers.items()):
        raise InvalidInput("header names and values must be strings (names non-empty)")
    if sum(len(k) + len(v) for k, v in headers.items()) > MAX_HEADER_BYTES:
        raise PayloadTooLarge(f"headers are over {MAX_HEADER_BYTES} characters in all")
    return dict(headers)


def _task_id(value: str) -> str:
    if not is_id(value):
        raise InvalidInput(f"task_id must be a 26-character atp id, got {quote(value)}")
    return value


def _key(key: str | None) -> str | None:
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH):
        raise InvalidInput(
            f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters, got {quote(key)}"
        )
    return key


def _attempts(value: int | None) -> int | None:
    if value is None:
        return None
    not_int = isinstance(value, bool) or not isinstance(value, int)
    if not_int or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise InvalidInput(f"max_attempts must be 1 to {MAX_ATTEMPTS_LIMIT}, got {quote(value)}")
    return value


def _timeout(value: float | None) -> float | None:
    if value is not None and (
        not isinstance(value, int | float) or not math.isfinite(value) or value <= 0
    ):
        raise InvalidInput(f"timeout must be a number of seconds > 0, got {quote(value)}")
    return None if value is None else float(value)


def _priority(value: int) -> int:
    if value == 0 and type(value) is int:  # the default, without the checks below
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_PRIORITY:
        raise InvalidInput(
            f"priority must be an integer within ±{MAX_PRIORITY}, got {quote(value)}"
        )
    return value


def _retry(value: RetryPolicy | None) -> RetryPolicy | None:
    """The policy itself checks its numbers (any way it is built); here only its type."""
    if value is not None and not isinstance(value, RetryPolicy):
        raise InvalidInput(f"retry must be a RetryPolicy, got {quote(value)}")
    return value
