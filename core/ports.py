"""The ports: what the core needs from the world, as batch-first Protocols.

Every method that can touch many tasks takes and returns a batch, because a round trip
per task is the main enemy of speed. Each docstring states its guarantee: what is atomic,
what duplicates do, and what a failure means. Implementations translate their client
library's errors into ``atp.core.errors`` and never return a client-library type.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from atp.core.flow.breaker import Breaker, BreakerState
from atp.core.flow.rules import Gates, Limit, Rules
from atp.core.model import JSON, AttemptError, State, Task, TaskRecord
from atp.core.schedules import Advance, Schedule
from atp.core.workflows.definition import Definition
from atp.core.workflows.runs import Run, RunPage, RunQuery

__all__ = [
    "ACTIVITY_BUCKET",
    "ACTIVITY_KEPT",
    "Activity",
    "ActivityCount",
    "Admission",
    "BreakerLedger",
    "Capabilities",
    "Claim",
    "ClaimingConsumer",
    "Clock",
    "Consumer",
    "Coordinator",
    "Created",
    "Delivery",
    "Fence",
    "FlowLedger",
    "FusingStore",
    "Held",
    "Lease",
    "LeaseStatus",
    "Limiter",
    "Member",
    "Outcome",
    "Page",
    "Probe",
    "ReadyAges",
    "Registry",
    "Requeue",
    "Sample",
    "ScheduleStore",
    "ServerTime",
    "TaskQuery",
    "TaskStore",
    "Timer",
    "Transport",
    "Verdict",
    "Wait",
    "WorkflowStore",
]


# -- Clock ---------------------------------------------------------------------------------


@runtime_checkable
class Clock(Protocol):
    """The only source of time in core."""

    def now(self) -> float:
        """Return the current time in seconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds pass; return whether it is set."""
        ...

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` once after ``seconds`` on the running loop, unless cancelled."""
        ...


class Timer(Protocol):
    """A pending ``call_later``; ``asyncio.TimerHandle`` is one."""

    def cancel(self) -> None: ...


# -- Transport -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport does natively; the core emulates the rest or refuses at start-up."""

    delay: bool = False
    """Holds a message until a later time (``nack(delay=)``). Emulated by the store's
    due-index and the scheduler's forwarder."""
    deduplication: bool = False
    """Drops a second publish of the same task id inside its window. Emulated by the
    store's compare-and-set at claim: a duplicate delivery is acked, never run."""
    lease_extension: bool = False
    """``keep_alive`` extends a delivery's lease. Without it, a task whose timeout is longer
    than the transport's lease is refused at start-up."""
    dead_letters: bool = False
    """Keeps terminated messages aside. The store's DEAD state is the dead-letter queue
    on every transport; this only tells whether the transport keeps a copy too."""
    durable: bool = False
    """A published message survives a crash of the publishing process and of the server.
    Without it the scheduler republishes READY tasks from the store after a restart."""
    lease_recovery: bool = False
    """Redelivers what a dead consumer held once its lease expires. Without it the
    scheduler's reaper recovers expired leases from the store."""
    shared: bool = True
    """Other processes reach the same queues. A process-local transport serves only the
    workers of the process that created it (``atp dev``, tests)."""
    lease: float | None = None
    """The transport's own lease (ack wait) in seconds, or None if it has none."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One task id handed to one consumer. ``token`` is opaque and only its consumer reads it.

    The transport carries ids, never the envelope: the body is stored once, in the store,
    and ``TaskStore.claim`` returns it (ADR 0023).
    """

    task_id: str
    subject: str
    token: str
    deliveries: int = 1
    """How many times the transport has delivered this message, this one included."""


@runtime_checkable
class Consumer(Protocol):
    """A subscription of one group to one subject pattern; verbs follow JetStream's."""

    async def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Return up to ``max_items`` deliveries, waiting up to ``timeout`` for the first.

        Returns an empty list on timeout. A message that does not name a task id is
        terminated by the transport and logged, never returned. Cancelling a fetch loses
        nothing: whatever it had taken is redelivered after its lease. Each returned delivery is
        leased to this consumer until acked, nacked, terminated or its lease runs out.
        """
        ...

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove the deliveries from the queue for good. Acking twice is harmless."""
        ...

    async def nack(self, deliveries: Sequence[Delivery], delay: float = 0.0) -> None:
        """Give the deliveries back, to be delivered again after ``delay`` seconds."""
        ...

    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        """Restart the lease of each delivery (JetStream's in_progress)."""
        ...

    async def terminate(self, deliveries: Sequence[Delivery], reason: str) -> None:
        """Stop delivering these messages, ever; a dead-letter copy is kept if supported."""
        ...

    async def close(self) -> None:
        """Stop fetching. Deliveries still held are redelivered after their lease."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Moves READY task ids from producers to the workers subscribed to a subject.

    A message carries the task's id and what the transport routes or deduplicates by
    (subject, priority, attempt), never the payload: workers get the envelope from the
    store's ``claim`` (ADR 0023).
    """

    capabilities: Capabilities

    async def publish(self, tasks: Sequence[Task]) -> None:
        """Publish each task's id to its subject; return once every one is confirmed.

        Raises BackendUnavailable if any publish was not confirmed: some of the batch may
        then have been published. Publishing the same task id again is always safe (the
        transport or the store's claim drops the duplicate), so the caller retries the
        whole batch.
        """
        ...

    async def consume(self, pattern: str, group: str) -> Consumer:
        """Subscribe ``group`` to every subject matching ``pattern`` (``*``, ``>``).

        Consumers of one group share the messages (each goes to one of them); every group
        receives every message. Subjects created after the subscription are included.
        """
        ...

    async def close(self) -> None:
        """Release connections; unacked deliveries are redelivered after their lease."""
        ...


# -- TaskStore -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Created:
    """What ``create`` did for one task."""

    id: str
    created: bool
    """False when a task with the same idempotency key existed inside its window: ``id``
    is then that task's id and nothing was written."""
    run_at: float
    """When the task runs: the given task's ``run_at`` if created, else the existing
    task's (for a key match, the ``run_at`` it was created with)."""
    replaced: str | None = None
    """Debounce: the id of the pending task this one replaced (cancelled), if any."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``claim`` did for one task id."""

    record: TaskRecord | None
    """The record after the claim, or as it stands when not claimed; None: unknown id."""
    claimed: bool


class LeaseStatus(enum.StrEnum):
    """What ``heartbeat`` found for one running task."""

    HELD = "HELD"
    LOST = "LOST"
    """The lease is no longer this owner's: it expired and was taken, or the task moved on."""
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    """Still held and extended, and a cancel was requested: the worker should stop it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as the worker reports it to ``finish``."""

    task_id: str
    owner: str
    state: State
    """SUCCEEDED, SCHEDULED (another attempt at ``run_at``), DEAD or CANCELLED."""
    at: float
    result: JSON = None
    error: AttemptError | None = None
    run_at: float | None = None
    refund: bool = False
    """The attempt does not count: SCHEDULED (the worker shut down under it) or DEAD (a
    claim past ``max_attempts``, not run)."""


@dataclass(frozen=True, slots=True)
class Requeue:
    """A request to give a DEAD task a new life."""

    task_id: str
    run_at: float
    payload: JSON = None
    replace_payload: bool = False


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A filter for listing tasks, newest first, with cursor paging."""

    subject: str | None = None
    """A subject pattern (``orders.*``), or None for all."""
    states: frozenset[State] | None = None
    cursor: str | None = None
    """The ``next_cursor`` of the previous page."""
    limit: int = 100
    created_after: float | None = None
    """Only tasks created at or after this time: the time stamped in the id, to the
    millisecond (``Task.created_at`` for every id the service makes), so a store walks an
    id range rather than scanning (ADR 0049)."""
    created_before: float | None = None
    """Only tasks created before this time (the id's time stamp, as ``created_after``)."""
    idempotency_key: str | None = None
    """Only the task that holds this idempotency key (at most one); needs the exact
    ``subject``, as keys are scoped by subject: one index lookup."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: list[TaskRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Fence:
    """A leader's fencing token, carried by leader-only writes."""

    name: str
    token: int


@runtime_checkable
class TaskStore(Protocol):
    """The source of truth for task state. Every transition is a compare-and-set.

    Batch calls are atomic per batch unless a method says otherwise: on an error nothing
    of the batch was applied. Results are in the order of the input.
    """

    async def create(
        self,
        tasks: Sequence[Task],
        *,
        now: float,
        idempotency_window: float,
        ready_until: float | None = None,
    ) -> list[Created]:
        """Create tasks, honouring idempotency keys, in one atomic step.

        A task whose ``idempotency_key`` was used on the same subject by a task created
        less than ``idempotency_window`` seconds ago is not created: its Created carries
        the existing id and run_at. Keys are scoped by subject: the same key on another
        subject is another task. Inside one batch the first task with a (subject, key)
        wins. A task whose id exists already is not created again either: its Created
        carries that id with ``created`` False (a producer's outbox relies on this to
        repeat a try whose answer was lost, ADR 0043). A created task is READY with
        ``lease_until=ready_until`` if ``ready_until`` is given and its ``run_at <= now``
        (the caller then publishes it); otherwise SCHEDULED.

        A task's ``dedup`` changes what its key does (ADR 0038), the key still scoped by
        subject:

        - ``throttle``: as above, with the task's ``dedup.period`` as its window.
        - ``debounce``: never matched. If the key's task is SCHEDULED or READY and has not
          started an attempt (``attempt == 0``), it is CANCELLED (``finished_at=now``) in
          the same step and its id returned as ``Created.replaced``; the new task is
          created either way and the key then names it, until ``run_at + window``.
        - ``unique``: matched while the key's task is SCHEDULED, READY or RUNNING, however
          old (``created`` False, nothing written; the caller refuses the publish). A
          finished, unknown or pruned task frees the key. The key names the new task
          until its ``run_at`` plus seven days or the window, whichever is longer.
        """
        ...

    async def get(self, ids: Sequence[str]) -> list[TaskRecord | None]:
        """Return the record of each id, or None for an unknown id."""
        ...

    async def take_due(
        self, *, now: float, limit: int, ready_until: float, fence: Fence | None = None
    ) -> list[Task]:
        """Move up to ``limit`` SCHEDULED tasks with ``run_at <= now`` to READY, oldest first.

        Each gets ``lease_until=ready_until``. Atomic: no task is taken by two callers.
        Raises FencedOut, changing nothing, if ``fence`` is older than one seen before.
        """
        ...

    async def release(self, ids: Sequence[str], *, now: float) -> None:
        """Move READY tasks back to SCHEDULED (their publish failed); others are untouched."""
        ...

    async def stamp_ready(self, ids: Sequence[str], *, ready_until: float) -> None:
        """Give READY tasks ``lease_until=ready_until``; others are untouched.

        The forwarder takes tasks ahead of their due time under a short stamp, so a
        leader that dies holding them leaves them to the reaper soon; once it has
        published them it stamps them as a publish does (``now + ready_timeout``).
        """
        ...

    async def claim(
        self, ids: Sequence[str], *, owner: str, now: float, lease_until: float
    ) -> list[Claim]:
        """Lease tasks to ``owner`` for running: READY -> RUNNING, attempt + 1.

        A RUNNING task whose lease expired (``lease_until <= now``) is taken over the same
        way. Anything else is not claimed and comes back as it stands, so the caller can
        tell a duplicate delivery (RUNNING elsewhere, finished, cancelled) from an
        unknown id. Per item: each id is claimed or not on its own.
        """
        ...

    async def heartbeat(
        self, ids: Sequence[str], *, owner: str, lease_until: float
    ) -> list[LeaseStatus]:
        """Extend the leases ``owner`` holds on RUNNING tasks to ``lease_until``."""
        ...

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Record how attempts ended: a compare-and-set on RUNNING and the lease owner.

        Returns per outcome whether it was applied; False means the lease was lost (the
        task was taken over or cancelled) and nothing was changed for that task. An
        outcome's error is appended to the task's error history, which keeps its first
        error and its newest ``ERROR_HISTORY - 1`` (``TaskRecord.with_error``), trimmed in
        the same atomic write.
        """
        ...

    async def cancel(self, ids: Sequence[str], *, now: float) -> list[TaskRecord | None]:
        """Cancel tasks: SCHEDULED or READY -> CANCELLED; RUNNING gets a cancel request.

        Finished tasks are left as they are. Returns each record after the call, or None
        for an unknown id. Per item.
        """
        ...

    async def recover(
        self,
        *,
        now: float,
        limit: int,
        default_max_attempts: int | None,
        fence: Fence | None = None,
    ) -> list[TaskRecord]:
        """Take back up to ``limit`` RUNNING tasks whose lease expired (their worker died).

        Each gets a ``lease`` error appended (the history bounded as by ``finish``) and
        goes to SCHEDULED with ``run_at=now``; to CANCELLED (``finished_at=now``) when a
        cancel was requested while it ran; or to DEAD (``finished_at=now``) when
        ``attempt`` has reached ``max_attempts`` (or ``default_max_attempts`` where the
        task has none; with None, such a task goes back to SCHEDULED and its next
        worker decides). Returns the changed records.
        Raises FencedOut as ``take_due`` does.
        """
        ...

    async def redispatch(
        self,
        *,
        now: float,
        limit: int,
        ready_until: float,
        fence: Fence | None = None,
        everything: bool = False,
    ) -> list[Task]:
        """Return up to ``limit`` READY tasks to publish again, stamping ``ready_until``.

        Takes those whose ``lease_until <= now`` (published but never claimed in time),
        or every READY task when ``everything`` (the transport lost its queues).
        Raises FencedOut as ``take_due`` does.
        """
        ...

    async def query(self, query: TaskQuery) -> Page:
        """List records matching ``query``, newest first."""
        ...

    async def counts(self) -> dict[tuple[str, State], int]:
        """Return how many tasks each (subject, state) holds; zero counts are left out."""
        ...

    async def requeue(self, requests: Sequence[Requeue], *, now: float) -> list[TaskRecord | None]:
        """Move DEAD tasks back to SCHEDULED with their attempts reset. Per item.

        Tasks in any other state are returned unchanged; None for an unknown id. The
        error history is kept.
        """
        ...

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete DEAD tasks (the given ones, or all); return how many were deleted."""
        ...

    async def prune(self, *, finished_before: float, now: float, limit: int) -> int:
        """Delete up to ``limit`` SUCCEEDED or CANCELLED tasks finished before the time,
        and idempotency keys whose window closed before ``now``; return tasks deleted."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


# -- Fused operations (optional capabilities) ----------------------------------------------


@runtime_checkable
class FusingStore(Protocol):
    """A TaskStore that can do store and transport work in one atomic call (ADR 0023).

    Where the store and the transport live on one server (a Redis store with the Redis
    transport), creating a task and putting its id on the subject's queue is one round
    trip instead of two, and so are fetching and claiming, or finishing and acking. The
    core uses these where ``fuse`` said yes and the separate calls everywhere else; the
    conformance suites run both paths.
    """

    def fuse(self, transport: Transport) -> bool:
        """Bind to ``transport`` if this store reaches its queues in one atomic call;
        return whether it did. Called once by ``Platform.build``, before any I/O. When
        True, ``create_and_publish`` may be called and every consumer ``transport`` makes
        from then on is a ClaimingConsumer."""
        ...

    async def create_and_publish(
        self, tasks: Sequence[Task], *, now: float, idempotency_window: float, ready_until: float
    ) -> list[Created]:
        """``create`` with ``ready_until``, and each created task with ``run_at <= now``
        published to the bound transport in the same atomic step.

        When it returns, such a task is both stored (READY) and on its subject's queue;
        on an error neither happened for any task of the batch. Duplicates (an
        idempotency key that matched) are neither created nor published.
        """
        ...


@runtime_checkable
class ClaimingConsumer(Consumer, Protocol):
    """A Consumer whose transport is fused with the store: fetch + claim and finish + ack
    each in one atomic call. Same guarantees as the separate calls, fewer round trips."""

    async def fetch_claimed(
        self, max_items: int, timeout: float, *, owner: str, lease: float
    ) -> list[tuple[Delivery, Claim]]:
        """``fetch`` then ``TaskStore.claim`` of what came, leases ending ``lease`` seconds
        after the claim. Deliveries whose claim failed (a duplicate, a finished or
        cancelled task) are acked, and unknown ids terminated, in the same call: only
        claimed deliveries are returned."""
        ...

    async def finish_and_ack(
        self, outcomes: Sequence[Outcome], deliveries: Sequence[Delivery]
    ) -> list[bool]:
        """``TaskStore.finish`` of ``outcomes`` and ``ack`` of the delivery of each one
        applied, in one atomic call; ``deliveries[i]`` carries ``outcomes[i]``. Returns
        what ``finish`` returns; a delivery whose outcome was not applied is not acked."""
        ...


# -- The store's clock (an optional capability) --------------------------------------------


@runtime_checkable
class ServerTime(Protocol):
    """A store whose server keeps the deployment's reference clock (ADR 0029).

    Processes on other hosts measure their clock's skew against it and refuse to lead or
    to take tasks when it is too large. A store that lives on the process's own host
    (memory, SQLite) has no other clock to compare with and does not declare this.
    """

    async def server_time(self) -> float:
        """The server's time now, seconds since the epoch, read in one round trip."""
        ...


# -- Ready ages (an optional capability) ---------------------------------------------------


@runtime_checkable
class ReadyAges(Protocol):
    """A store that tells how long its READY tasks have waited, for autoscaling (ADR 0044).

    A read for metrics, made once per scrape interval: one query or script, bounded.
    """

    async def oldest_ready(self, *, limit: int) -> dict[str, float]:
        """Per subject, the earliest ``run_at`` among its READY tasks (when the longest
        waiting one became due).

        Looks at no more than the ``limit`` READY tasks with the earliest ``lease_until``,
        the order they were handed to the transport in: exact while the store holds at most
        ``limit`` READY tasks; beyond that, a subject whose READY tasks all came later is
        left out. A subject without READY tasks is left out.
        """
        ...


# -- Activity (an optional capability) -----------------------------------------------------


ACTIVITY_BUCKET = 60.0
"""Seconds one activity bucket spans: attempts that ended are counted per minute."""
ACTIVITY_KEPT = 2 * 3600.0
"""Seconds of activity a store keeps at least; older buckets may be dropped."""


@dataclass(frozen=True, slots=True)
class ActivityCount:
    """How many attempts of one subject ended one way within one bucket."""

    at: float
    """The bucket's start, a multiple of ``ACTIVITY_BUCKET`` seconds since the epoch."""
    subject: str
    state: State
    """What the attempt ended in: SUCCEEDED, SCHEDULED (a retry: the task left RUNNING
    to run again, after a failure or a lost lease), DEAD or CANCELLED (a cancelled task
    that was waiting counts too, as its attempt will never run). ``State`` has no
    RETRYING: a retry is the move from RUNNING back to SCHEDULED."""
    count: int


@runtime_checkable
class Activity(Protocol):
    """A store that counts the attempts that ended, per minute, for the console's charts.

    The counters are kept by the writes that end attempts (``finish``, ``recover``,
    ``cancel``), in the same transaction or script, so reading them is never a scan.
    An attempt is counted in the bucket of the write's time (``Outcome.at``, or the
    ``now`` of ``recover`` and ``cancel``), per (subject, state it ended in); deleting the
    task later (``purge``, ``prune``) leaves its count. ``prune`` drops the buckets that
    ended more than ``ACTIVITY_KEPT`` before its ``now``.
    """

    async def activity(self, *, since: float) -> list[ActivityCount]:
        """The non-zero buckets starting at or after ``since`` (rounded down to a bucket),
        oldest first; buckets older than ``ACTIVITY_KEPT`` may be gone."""
        ...

    async def oldest_due(self) -> float | None:
        """The earliest ``run_at`` among SCHEDULED tasks (new, delayed or retrying), read
        from an index in one query; None when none waits. ``now - oldest_due()`` is the
        scheduler's lag once it is positive."""
        ...


# -- FlowLedger (an optional capability) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admission:
    """One task asking to run: the gates it must pass (``Rules.gates``)."""

    task_id: str
    gates: Gates
    lease_until: float
    """Slots taken are held until then (a heartbeat extends them with ``extend``)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``admit`` said to one task."""

    admitted: bool
    wait_for: str | None = None
    """Refused because this slot is full: the task should wait in its waiter list."""
    retry_at: float | None = None
    """Refused by a bucket or window: when to try again."""


@dataclass(frozen=True, slots=True)
class Wait:
    """One task joining a waiter list."""

    name: str
    task_id: str
    group: str = ""
    """Its fair group (``Task.group_key``, "" for none)."""
    weight: int = 1
    """Its group's share of the list's wake-ups (1 to 1000)."""
    rank: float = 0.0
    """Its order within the group, lowest first (``atp.core.flow.rules.rank``: creation
    time less priority times ``PRIORITY_AGEING``)."""


@dataclass(frozen=True, slots=True)
class Held:
    """The slots one admitted task holds."""

    task_id: str
    slots: tuple[str, ...]


@runtime_checkable
class FlowLedger(Protocol):
    """The shared state of flow control (ADR 0038): slots, buckets, windows, waiter lists and
    the rules, kept by the store's backend so every worker on every host sees one copy.

    The core matches rules to tasks (``Rules.gates``); the ledger never matches a pattern,
    it keeps named budgets and applies ``atp.core.flow.meter``'s arithmetic. Every method
    is atomic against every other caller. Slot holders are task ids; a holder whose
    ``until`` has passed no longer counts (a dead worker's slot comes back by itself).
    Waiter lists are named (a slot's name, or ``p:<subject>`` for a pause); a task id is
    in a list at most once. Whatever takes waiters out of a list (``release_slots``,
    ``park``, ``wake_ready``, ``unpark``) takes them in **wake order** (ADR 0039): a list's
    waiters are split by ``Wait.group``, and the groups are served by stride scheduling:
    each waiting group has a *pass*; the next waiter comes from the group with the lowest
    pass (ties: the lower group name), and that group's pass then grows by
    ``1 / weight``; a group that starts waiting (its first waiter, or its first since its
    last left) starts at the list's *time*: the pass the group served last reached (0 for
    a new list). Within a group, the waiter with the lowest ``rank`` comes first, then
    the lowest task id. So while groups wait, each is served in proportion to its weight,
    a group arriving late is not owed a backlog of turns, and a task keeps its place
    however often it was woken and parked again. The weight of a group is the one its
    latest ``Wait`` gave. A list whose every waiter left forgets its time and passes.

    State does not grow with the number of keys: a slot's limit is forgotten once the slot
    has neither live holders nor waiters, and a limit not remembered counts as 1 (room 1
    while nobody holds the slot); buckets and windows at rest (their times passed) may go,
    as a new budget answers the same. A waiter list named ``p:<subject>`` never has room.
    """

    async def admit(self, requests: Sequence[Admission], *, now: float) -> list[Verdict]:
        """Admit each task, in order, or refuse it taking nothing.

        Per request: if a slot is full (its live holders other than this task number
        ``limit`` or more), refuse with ``wait_for`` that slot's name. Else, if a bucket or
        a window refuses (``meter``), refuse with ``retry_at`` the latest of their
        ``retry_at`` (their queues move). Else take every slot (holder until
        ``lease_until``; a task holding one already keeps it), bucket and window, and
        admit. The slot's limit is remembered from the latest request naming it.
        """
        ...

    async def extend(self, held: Sequence[Held], *, until: float) -> None:
        """Move the ``until`` of each slot each task holds; a slot not held is not taken."""
        ...

    async def release_slots(self, held: Sequence[Held], *, now: float, reserve: float) -> list[str]:
        """Give the slots back, then wake waiters: for each slot with room (limit minus
        live holders), take that many of its waiters out in wake order; return their ids.

        Each waiter taken out of a slot's list becomes a holder of that slot until
        ``now + reserve``: the room is its own while it travels to a worker (whose admit
        finds it holding the slot), so no room is given twice and the wake order is the
        order tasks run in. One that never arrives frees it when the reserve runs out."""
        ...

    async def park(self, waits: Sequence[Wait], *, now: float, reserve: float) -> list[str]:
        """Add each task to its waiter list (a task already there keeps its place, with
        this group, weight and rank); then, as ``release_slots`` does (holders until
        ``now + reserve``), take out the waiters of any named slot that has room now, and
        return their ids (so a slot freed while a task was on its way to the list is not
        missed)."""
        ...

    async def wake_ready(self, *, now: float, limit: int, reserve: float) -> list[str]:
        """For every slot with waiters and room, take out that many waiters (at most
        ``limit`` in all), each list in wake order, each a holder until ``now + reserve``
        as in ``release_slots``; return their ids. The scheduler's sweep. Which of several
        lists goes first is the backend's choice."""
        ...

    async def unpark(self, names: Sequence[str], *, limit: int) -> list[str]:
        """Take up to ``limit`` waiters out of the named lists, each in wake order (which
        list goes first is the backend's choice); return their ids."""
        ...

    async def waiters(self) -> dict[str, int]:
        """How many tasks wait in each non-empty waiter list."""
        ...

    async def wake(self, ids: Sequence[str], *, now: float) -> int:
        """Give SCHEDULED tasks with ``run_at > now`` the ``run_at`` ``now``, so the
        forwarder takes them at once; others are untouched. Returns how many changed."""
        ...

    async def put_limits(self, limits: Sequence[Limit]) -> None:
        """Create or replace limits by ``Limit.name``; the rules' version grows."""
        ...

    async def remove_limits(self, names: Sequence[str]) -> list[bool]:
        """Remove limits by name; per name, whether it existed. The version grows."""
        ...

    async def set_paused(self, patterns: Sequence[str], paused: bool) -> list[bool]:
        """Pause (or resume) subject patterns; per pattern, whether it changed anything.
        The version grows. Resuming does not wake held tasks: the caller unparks them."""
        ...

    async def rules(self) -> Rules:
        """Every limit (by name) and paused pattern (sorted), with the version."""
        ...

    async def rules_version(self) -> int:
        """The version alone, in one cheap read: 0 until the first rule is written."""
        ...


# -- BreakerLedger -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """Outcomes of one breaker's subject, reported together."""

    key: str
    """The breaker (``atp.core.flow.breaker.breaker_key``)."""
    policy: Breaker
    ok: int
    failed: int
    by: str = ""
    """The reporting worker's name: a change this sample makes is stamped with it."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One task of a breaker's subject asking to run while the breaker is not closed."""

    key: str
    policy: Breaker
    task_id: str
    until: float
    """The probe's claim lasts until then (its lease)."""
    by: str = ""
    """The asking worker's name: a change this request makes is stamped with it."""


@runtime_checkable
class BreakerLedger(Protocol):
    """The shared state of circuit breakers (ADR 0040), kept by the store's backend beside
    the flow ledger, so every worker of a group sees one breaker per subject.

    The arithmetic is ``atp.core.flow.breaker`` (``observe``, ``probe``); the ledger
    applies it atomically per key, in the order given, and keeps the result. A key never
    written reads as a closed breaker with nothing counted. A waiter list named
    ``b:<key>`` (``breaker_waiters``) never has room, like a pause's: only ``unpark``
    takes its waiters out.
    """

    async def observe(self, samples: Sequence[Sample], *, now: float) -> list[BreakerState]:
        """Apply each sample (``breaker.observe(..., by=sample.by)``) and return the state
        after it."""
        ...

    async def probe(self, probes: Sequence[Probe], *, now: float) -> list[BreakerState]:
        """Apply each request (``breaker.probe(..., by=probe.by)``) and return the state
        after it: the task may run if that state is closed or names it as the probe."""
        ...

    async def breakers(self) -> list[BreakerState]:
        """Every breaker not closed, and every closed one that counted something in the
        last two windows, sorted by key. (A closed breaker at rest may be forgotten.)"""
        ...

    async def reset_breakers(self, keys: Sequence[str], *, now: float) -> list[bool]:
        """Close each breaker and clear its counts; per key, whether it was not closed."""
        ...


# -- ScheduleStore -------------------------------------------------------------------------


@runtime_checkable
class ScheduleStore(Protocol):
    """Durable cron schedules, kept beside the tasks. Every write is a compare-and-set.

    A separate port for now: a TaskStore that also implements it lets ``atp cron`` and the
    scheduler's cron component work; one that does not gets a clear ConfigError from them.
    Each schedule carries a ``revision``; writes name the revision they read, and the store
    adds one on every write. Batch calls are atomic per batch unless a method says
    otherwise; results are in the order of the input. A store can get every method from
    ``atp.core.records.RecordStore`` by writing its four record primitives.
    """

    async def put_schedules(self, schedules: Sequence[Schedule], *, now: float) -> list[Schedule]:
        """Create or replace schedules in one atomic step; return them as stored.

        A schedule with ``revision == 0`` is created: AlreadyExists if its name is taken.
        Any other revision replaces the stored schedule of that name only if that one has
        exactly this revision: StateConflict otherwise (changed meanwhile, or removed). On
        either error nothing of the batch is written; a name twice in one batch is
        InvalidInput. Stored copies get ``revision + 1`` and ``updated_at=now`` (and
        ``created_at=now`` when created); every other field is stored as given.
        """
        ...

    async def get_schedules(self, names: Sequence[str]) -> list[Schedule | None]:
        """Return the schedule of each name, or None for an unknown name."""
        ...

    async def list_schedules(self) -> list[Schedule]:
        """Return every schedule, by name."""
        ...

    async def remove_schedules(self, names: Sequence[str]) -> list[bool]:
        """Delete schedules; per name, whether it existed. Tasks already fired stay."""
        ...

    async def due_schedules(self, *, now: float, limit: int) -> list[Schedule]:
        """Return up to ``limit`` schedules not paused with ``next_tick <= now``, earliest
        ``next_tick`` first (then by name). Reads only: nothing is taken or locked."""
        ...

    async def next_tick(self) -> float | None:
        """Return the earliest ``next_tick`` of the schedules not paused; None if none."""
        ...

    async def advance_schedules(
        self, advances: Sequence[Advance], *, now: float, fence: Fence
    ) -> list[bool]:
        """Record what the leader fired: a compare-and-set on each schedule's revision.

        Per item: where the schedule still has ``advance.revision``, set its ``next_tick``
        and, when ``advance.last_tick`` is not None, ``last_tick``, ``last_task`` and
        ``last_fired_at=now``; add one to its revision; True. Otherwise (changed or removed
        meanwhile) change nothing for it; False. Raises FencedOut, changing nothing, if
        ``fence`` is older than one seen before under its name (shared with ``take_due``).
        """
        ...


# -- WorkflowStore -------------------------------------------------------------------------


@runtime_checkable
class WorkflowStore(Protocol):
    """Durable workflow definitions and runs, kept beside the tasks.

    A separate port, as ScheduleStore is: a TaskStore that also implements it lets the
    workflow engine, ``atp workflow`` and the scheduler's workflow sweep work; one that does
    not gets a clear ConfigError from them. Definitions are immutable once stored. Every
    write of a run is a compare-and-set on its ``revision``, which the store adds one to on
    every write; there are no leader-only writes here (the sweep's writes are the same
    compare-and-sets as a worker's), so none carries a Fence. Batch calls are atomic per
    batch unless a method says otherwise; results are in the order of the input. Like
    ScheduleStore, it comes with ``atp.core.records.RecordStore``.
    """

    async def put_definitions(self, definitions: Sequence[Definition], *, now: float) -> list[bool]:
        """Store definitions under (name, version) in one atomic step; per item, whether it
        was created. A version stored already with the same steps is left as it is (False);
        with different steps it is AlreadyExists and nothing of the batch is written. The
        same (name, version) twice in one batch is InvalidInput."""
        ...

    async def get_definitions(
        self, keys: Sequence[tuple[str, int | None]]
    ) -> list[Definition | None]:
        """Return the definition of each (name, version), the highest version for a None
        version, or None where there is none."""
        ...

    async def list_definitions(self) -> list[Definition]:
        """Return every stored definition, by name, then version."""
        ...

    async def create_runs(self, runs: Sequence[Run]) -> list[Run]:
        """Store new runs in one atomic step; return them as stored (``revision`` 1).

        A run id that exists already is AlreadyExists and nothing of the batch is written.
        """
        ...

    async def get_runs(self, ids: Sequence[str]) -> list[Run | None]:
        """Return the run of each id, or None for an unknown id."""
        ...

    async def update_runs(self, runs: Sequence[Run]) -> list[bool]:
        """Replace runs: a compare-and-set on each run's ``revision``. Per item.

        Where the stored run still has the given run's ``revision``, store the given run
        with ``revision + 1`` and True; otherwise (changed meanwhile, or unknown) change
        nothing for it and False. The caller then reads the run again and decides anew.
        """
        ...

    async def list_runs(self, query: RunQuery) -> RunPage:
        """List runs matching ``query``, newest first (by id), with cursor paging."""
        ...

    async def due_runs(self, *, now: float, limit: int) -> list[Run]:
        """Return up to ``limit`` runs, RUNNING or COMPENSATING, with ``wake_at <= now``,
        earliest ``wake_at`` first. Reads only: nothing is taken or locked."""
        ...


# -- Coordinator ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    """A named lease held by ``owner`` until ``expires_at``."""

    name: str
    owner: str
    token: int
    """Fencing token: strictly greater after every change of holder."""
    expires_at: float

    @property
    def fence(self) -> Fence:
        return Fence(self.name, self.token)


@runtime_checkable
class Coordinator(Protocol):
    """Leases for leader election and named locks."""

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease ``name`` for ``ttl`` seconds if it is free, expired or ours.

        Returns None if another owner holds it. The token grows when the holder changes
        and stays the same when the holder re-acquires its own lease.
        """
        ...

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend our lease by ``ttl`` from now; None if it was lost meanwhile."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease up; a no-op if it is no longer ours."""
        ...

    async def holder(self, name: str) -> Lease | None:
        """Return the current unexpired holder of ``name``, or None."""
        ...

    async def close(self) -> None:
        """Release connections (leases held run out on their own)."""
        ...


# -- Registry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One live process of the fleet, as it last announced itself (ADR 0041)."""

    name: str
    """Unique per process: a worker's name."""
    role: str
    """``worker`` (the only role that announces itself so far)."""
    host: str
    pid: int
    version: str
    """The atp version it runs."""
    group: str
    patterns: tuple[str, ...]
    concurrency: int
    running: int
    """Attempts in flight when it announced."""
    started_at: float
    seen_at: float
    """When it last announced, by its own clock."""
    expires_at: float = 0.0
    """When it leaves the registry unless it announces again; set by the registry from
    ``ttl`` (by the backend's clock where it has one)."""


@runtime_checkable
class Registry(Protocol):
    """Service discovery beside the leases: processes announce themselves with a TTL, and
    one that stops announcing is gone once its TTL has passed (a crash needs no clean-up).

    An optional capability of a Coordinator. Every call is atomic per member."""

    async def announce(self, members: Sequence[Member], *, ttl: float) -> None:
        """Create or replace each member by name, listed until ``ttl`` seconds from now."""
        ...

    async def withdraw(self, names: Sequence[str]) -> None:
        """Remove members by name at once (a clean stop); unknown names are ignored."""
        ...

    async def members(self, role: str | None = None) -> list[Member]:
        """The members whose TTL has not passed (of ``role``, if given), sorted by name,
        each with its ``expires_at``."""
        ...


# -- Limiter -------------------------------------------------------------------------------


@runtime_checkable
class Limiter(Protocol):
    """Token buckets shared by every process that uses the same backend (per-token rate limits).

    A separate, optional port: only ``atp server`` needs one.
    """

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> float:
        """Take ``cost`` tokens from bucket ``key`` in one atomic step; return 0.0 if taken.

        The bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per
        second. If fewer than ``cost`` are left, nothing is taken and the return value is
        the seconds until ``cost`` tokens will be there (for ``Retry-After``). Atomic
        against every other caller of the same backend, in this process or another.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
