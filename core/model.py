"""The task envelope, its states, and the record a TaskStore keeps for it.

A ``Task`` is what travels: it is serialised as JSON (``atp.core.codec``) so any language
can produce or consume it. A ``TaskRecord`` is what the store knows on top: the state,
the lease, the result and the history of errors.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from atp.core.errors import InvalidInput
from atp.core.quoting import cut, quote

__all__ = [
    "ACTIVE_STATES",
    "ERROR_HISTORY",
    "ERROR_TEXT_LIMIT",
    "FINAL_STATES",
    "JSON",
    "TRACEBACK_LIMIT",
    "AttemptError",
    "Dedup",
    "DedupMode",
    "RetryPolicy",
    "State",
    "Task",
    "TaskRecord",
]

JSON: TypeAlias = Any
"""A value that ``json`` can encode: dict, list, str, int, float, bool or None."""


class State(enum.StrEnum):
    """Where a task is in its life. Transitions are compare-and-set in the store.

    SCHEDULED -> READY -> RUNNING -> SUCCEEDED | SCHEDULED (retry) | DEAD;
    SCHEDULED | READY -> CANCELLED; RUNNING -> CANCELLED when the worker honours a
    cancel request; DEAD -> SCHEDULED on requeue.
    """

    SCHEDULED = "SCHEDULED"
    READY = "READY"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


FINAL_STATES = frozenset({State.SUCCEEDED, State.DEAD, State.CANCELLED})
ACTIVE_STATES = frozenset({State.SCHEDULED, State.READY, State.RUNNING})


_RETRY_BOUNDS = (("base", 0.0, math.inf), ("factor", 1.0, 100.0), ("cap", 0.0, math.inf))
"""Each RetryPolicy number's inclusive range; every one must also be finite."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * factor**(n-1)))``."""

    base: float = 1.0
    """Seconds of the first backoff ceiling. Default 1."""
    factor: float = 2.0
    """Growth of the ceiling per attempt. Default 2."""
    cap: float = 300.0
    """Largest backoff in seconds. Default 300."""
    jitter: bool = True
    """Full jitter when true; the ceiling itself when false. Default true."""

    def __post_init__(self) -> None:
        """Refuse what would break backoff: checked here, so every way in (SDK, CLI, REST,
        gRPC, the stores' own decoding) meets the same rules. InvalidInput names the field."""
        for name, low, high in _RETRY_BOUNDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"retry {name} must be a number, got {quote(value)}")
            if not (math.isfinite(value) and low <= value <= high):
                raise InvalidInput(
                    f"retry {name} must be a finite number {_range(low, high)}, got {quote(value)}"
                )
        if not isinstance(self.jitter, bool):
            raise InvalidInput(f"retry jitter must be true or false, got {quote(self.jitter)}")

    def ceiling(self, attempt: int) -> float:
        """Return the backoff ceiling after failed attempt number ``attempt`` (1-based)."""
        exponent = max(attempt - 1, 0)
        if exponent > 64:  # the cap is reached long before; avoid float overflow
            return self.cap
        return float(min(self.cap, self.base * self.factor**exponent))


class DedupMode(enum.StrEnum):
    """How a publish treats an earlier task of the same (subject, idempotency key)."""

    DEBOUNCE = "debounce"
    """Replace it while it is pending (not yet run): the pending task is cancelled, the new
    one runs ``period`` seconds after its publish. Of a burst, only the last runs."""
    THROTTLE = "throttle"
    """Drop the publish (answer with the earlier task) while the key's task was created
    less than ``period`` seconds ago: at most one task per key per period."""
    UNIQUE = "unique"
    """Refuse the publish while a task with the key is queued or running."""

    def __str__(self) -> str:
        return self.value


MAX_DEDUP_PERIOD = 30 * 86400.0
"""Longest debounce or throttle period: 30 days."""


@dataclass(frozen=True, slots=True)
class Dedup:
    """A deduplication mode beyond the idempotency window, keyed by ``idempotency_key``."""

    mode: DedupMode
    period: float | None = None
    """Seconds: the debounce delay or the throttle period; None for ``unique``."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", DedupMode(self.mode))
        except ValueError:
            modes = ", ".join(m.value for m in DedupMode)
            message = f"dedup mode must be one of {modes}, got {quote(self.mode)}"
            raise InvalidInput(message) from None
        period = self.period
        if self.mode is DedupMode.UNIQUE:
            if period is not None:
                raise InvalidInput("dedup mode unique takes no period")
            return
        if isinstance(period, bool) or not isinstance(period, int | float):
            raise InvalidInput(f"dedup {self.mode} needs a period in seconds, got {quote(period)}")
        if not (math.isfinite(period) and 0 < period <= MAX_DEDUP_PERIOD):
            raise InvalidInput(
                f"dedup {self.mode} period must be over 0 and at most {MAX_DEDUP_PERIOD:g}s, "
                f"got {quote(period)}"
            )
        object.__setattr__(self, "period", float(period))


@dataclass(frozen=True, slots=True)
class Task:
    """The envelope of one task. Immutable; change it with ``dataclasses.replace``."""

    id: str
    subject: str
    payload: JSON = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    run_at: float = 0.0
    """When the task may run, seconds since the epoch."""
    created_at: float = 0.0
    attempt: int = 0
    """Attempts started so far; 1 while the first attempt runs."""
    max_attempts: int | None = None
    """Attempts before the task is dead; None: the handler's setting, else the worker's."""
    retry: RetryPolicy | None = None
    """Backoff between attempts; None: the handler's policy, else the worker's."""
    timeout: float | None = None
    """Seconds one attempt may run; None: the handler's setting, else the worker's."""
    priority: int = 0
    """Higher first among tasks due at the same instant; the in-process transport also
    delivers waiting tasks higher first, Redis Streams and NATS in publish order. Tasks
    waiting behind a full slot are woken higher first, one level gained per
    ``PRIORITY_AGEING`` seconds waited (levels beyond ±9 count as ±9; ADR 0039)."""
    schedule: str | None = None
    tick: float | None = None
    workflow_run: str | None = None
    step: str | None = None
    concurrency_key: str | None = None
    """Tasks sharing this key run at most the key's limit at once, across every worker
    (``atp limit set --key``; 1 when no limit names it). ADR 0038."""
    rate_key: str | None = None
    """Tasks sharing this key share the rate limits set for it (``atp limit set --key``)."""
    group_key: str | None = None
    """The fair group (a tenant): tasks waiting behind a full slot are woken group by
    group, by each group's weight (``atp limit set --key --weight``), then by priority."""
    dedup: Dedup | None = None
    """Debounce, throttle or unique-while-active on ``idempotency_key``; None: the
    idempotency window only."""

    def replace(self, **changes: Any) -> Task:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


ERROR_HISTORY = 21
"""Errors a TaskRecord keeps at most: its first and its newest ``ERROR_HISTORY - 1``.

The first says how the trouble started, the last twenty how it ends; the attempt numbers
of the kept errors show the gap. Every store trims as it appends, in the same atomic step,
so a task retried for ever (``max_attempts`` up to 1000, DLQ requeues that keep the
history, a lease lost every minute) keeps a record of about 21 x 24 KiB of error text at
most, which each append rewrites. A record stored with more errors reads as it is; its
next append trims it."""
ERROR_TEXT_LIMIT = 8192
"""Characters an AttemptError's message keeps at most: its head and tail around a marker."""
TRACEBACK_LIMIT = 16384
"""Characters an AttemptError's traceback keeps at most, head and tail like ``message``:
room for a few chained exceptions of ~30 frames each (the innermost frames, at the tail,
are the ones that matter), while a record of 25 failed attempts stays under 1 MB."""


@dataclass(frozen=True, slots=True)
class AttemptError:
    """Why one attempt did not succeed.

    A ``message`` over ``ERROR_TEXT_LIMIT`` characters (a ``traceback`` over
    ``TRACEBACK_LIMIT``) is cut to its head and tail with a marker saying how much was
    left out, wherever the error comes from: a record holds a bounded history and every
    API can answer with it.
    """

    attempt: int
    at: float
    message: str
    kind: str = "error"
    """``error`` (the handler raised), ``timeout``, ``lease`` (lease expired, or a claim
    past ``max_attempts`` after one), ``fail`` (the handler raised Fail), ``shutdown``,
    ``unserialisable``."""
    traceback: str | None = None
    """The formatted traceback of the handler's exception (ADR 0036), cut past
    ``TRACEBACK_LIMIT``; None where nothing was raised: a timeout, a lost lease, a
    shutdown, a ``Retry``, a record written before tracebacks were kept."""
    worker: str | None = None
    """The worker that ran the attempt (its lease owner); None where none is known: a
    record written before workers were kept, a task quarantined by the store."""
    started_at: float | None = None
    """When the attempt began (its handler was called), so it took ``at - started_at``;
    None where it is not known: a lost lease, an attempt that never reached its handler,
    a record written before start times were kept."""

    def __post_init__(self) -> None:
        if len(self.message) > ERROR_TEXT_LIMIT:
            object.__setattr__(self, "message", cut(self.message, ERROR_TEXT_LIMIT))
        if self.traceback is not None and len(self.traceback) > TRACEBACK_LIMIT:
            object.__setattr__(self, "traceback", cut(self.traceback, TRACEBACK_LIMIT))


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What the TaskStore knows about one task."""

    task: Task
    state: State
    updated_at: float
    lease_owner: str | None = None
    """RUNNING: the worker holding the lease; SUCCEEDED: the worker that ran it (ADR 0049).
    Liveness is the ``state``'s to say, never this field's."""
    lease_until: float | None = None
    """RUNNING: when the lease expires. READY: when an undelivered task is dispatched again."""
    result: JSON = None
    errors: tuple[AttemptError, ...] = ()
    cancel_requested: bool = False
    finished_at: float | None = None

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def subject(self) -> str:
        return self.task.subject

    @property
    def last_error(self) -> AttemptError | None:
        return self.errors[-1] if self.errors else None

    def with_error(self, error: AttemptError) -> tuple[AttemptError, ...]:
        """The error history with ``error`` appended, kept to ``ERROR_HISTORY``: the
        first error and the newest."""
        errors = (*self.errors, error)
        if len(errors) <= ERROR_HISTORY:
            return errors
        return (errors[0], *errors[len(errors) - ERROR_HISTORY + 1 :])

    def replace(self, **changes: Any) -> TaskRecord:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def _range(low: float, high: float) -> str:
    return f">= {low:g}" if high == math.inf else f"from {low:g} to {high:g}"
