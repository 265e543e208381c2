"""The in-process TaskStore: immutable records in a dict, with heaps for the time indexes.

Everything runs in one event loop and no method awaits in the middle of a change, so each
call is atomic. Payloads and results are copied through JSON on the way in, as a real
store would, so a caller mutating its objects afterwards changes nothing here.

Indexes are heaps with lazy invalidation: a transition pushes the record's new key and
leaves the old entry behind; a popped entry counts only while its record still has that
state and key. A heap is rebuilt when its dead entries outnumber the live ones.

The whole store is one file on purpose: every method shares these indexes, and splitting
them from the transitions that keep them true would hide the invariants.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from atp.core.codec import dumps, loads
from atp.core.errors import FencedOut, InvalidInput
from atp.core.listing import check_query, id_bounds, key_of
from atp.core.model import JSON, DedupMode, State, Task, TaskRecord
from atp.core.ports import (
    ACTIVITY_BUCKET,
    ACTIVITY_KEPT,
    Activity,
    ActivityCount,
    BreakerLedger,
    Claim,
    Created,
    Fence,
    FlowLedger,
    LeaseStatus,
    Outcome,
    Page,
    ReadyAges,
    Requeue,
    ScheduleStore,
    TaskQuery,
    TaskStore,
    WorkflowStore,
)
from atp.core.records import Decide, Record, RecordStore, Scan, Table
from atp.core.recovery import recovered
from atp.core.subjects import compile_pattern, validate_subject
from atp.plugins.memory._breakers import MemoryBreakers
from atp.plugins.memory._ledger import MemoryLedger

__all__ = ["MemoryStore"]

T = TypeVar("T")

_Entry = tuple[Any, ...]
"""A heap entry: the record's index key, then its id."""
_Key = tuple[str, str]
"""An idempotency key with the subject that scopes it: (subject, key)."""

_OUTCOME_STATES = frozenset({State.SUCCEEDED, State.SCHEDULED, State.DEAD, State.CANCELLED})
_ENDED = frozenset({State.SUCCEEDED, State.DEAD, State.CANCELLED})
_ACTIVE = frozenset({State.SCHEDULED, State.READY, State.RUNNING})
_PENDING = frozenset({State.SCHEDULED, State.READY})
_UNIQUE_HOLD = 7 * 86400.0
"""A unique key names its task at least this long past its run_at."""
_SLACK = 1024


class _Index:
    """A min-heap over the records in ``states``, ordered by ``key`` then id."""

    __slots__ = ("_heap", "_threshold", "key", "states")

    def __init__(self, states: frozenset[State], key: Callable[[TaskRecord], _Entry]) -> None:
        self.states = states
        self.key = key
        self._heap: list[_Entry] = []
        self._threshold = _SLACK

    def add(self, record: TaskRecord) -> None:
        heapq.heappush(self._heap, (*self.key(record), record.id))

    def pop(
        self, records: dict[str, TaskRecord], due: Callable[[_Entry], bool]
    ) -> TaskRecord | None:
        """Remove and return the first live record whose entry is ``due``, if any."""
        heap = self._heap
        while heap and due(heap[0]):
            entry = heapq.heappop(heap)
            record = records.get(entry[-1])
            if self._live(entry, record):
                return record
        return None

    def compact(self, records: dict[str, TaskRecord], totals: Counter[State]) -> None:
        """Drop dead and repeated entries once they outnumber the live records."""
        if len(self._heap) <= self._threshold:
            return
        live = sum(totals[state] for state in self.states)
        if len(self._heap) > 2 * live + _SLACK:
            kept = dict.fromkeys(e for e in self._heap if self._live(e, records.get(e[-1])))
            self._heap = list(kept)
            heapq.heapify(self._heap)
        self._threshold = 2 * live + _SLACK

    def first(self, records: dict[str, TaskRecord]) -> TaskRecord | None:
        """The first live record, left in place; the dead entries before it are dropped."""
        heap = self._heap
        while heap:
            record = records.get(heap[0][-1])
            if self._live(heap[0], record):
                return record
            heapq.heappop(heap)
        return None

    def live(self, records: dict[str, TaskRecord]) -> list[TaskRecord]:
        """The records with a live entry, each once, in no particular order."""
        found = {e[-1]: records[e[-1]] for e in self._heap if self._live(e, records.get(e[-1]))}
        return list(found.values())

    def _live(self, entry: _Entry, record: TaskRecord | None) -> bool:
        return record is not None and record.state in self.states and self.key(record) == entry[:-1]


def _due_key(record: TaskRecord) -> _Entry:
    return (record.task.run_at, -record.task.priority)


def _lease_key(record: TaskRecord) -> _Entry:
    return (record.lease_until or 0.0,)


def _finished_key(record: TaskRecord) -> _Entry:
    return (record.finished_at or 0.0,)


def _bucket(at: float) -> float:
    """The start of the activity bucket ``at`` falls in."""
    return math.floor(at / ACTIVITY_BUCKET) * ACTIVITY_BUCKET


def _ends_attempt(old: State, new: State) -> bool:
    """Whether a change from ``old`` to ``new`` ends an attempt (``Activity``): into a
    final state, or from RUNNING back to SCHEDULED (a retry)."""
    if old is new:
        return False
    return new in _ENDED or (new is State.SCHEDULED and old is State.RUNNING)


def _detach(value: JSON) -> JSON:
    """Return a private copy of a JSON value (InvalidInput if it is not JSON)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return loads(dumps(value))


def _stored(task: Task) -> Task:
    return task.replace(payload=_detach(task.payload), headers=dict(task.headers))


def _out(record: TaskRecord | None) -> TaskRecord | None:
    """A copy safe to hand out: a caller mutating it must not change the stored record."""
    if record is None:
        return None
    if _is_plain(record.task.payload) and _is_plain(record.result) and not record.task.headers:
        return record
    return record.replace(task=_stored(record.task), result=_detach(record.result))


def _out_all(records: Sequence[TaskRecord]) -> list[TaskRecord]:
    return [_out(record) for record in records]  # type: ignore[misc]


def _is_plain(value: JSON) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class MemoryStore(MemoryLedger, MemoryBreakers, RecordStore):
    """An in-process TaskStore for ``atp dev`` and tests: fast, exact, and gone on exit.
    It keeps flow control's ledger too (``MemoryLedger``), and the circuit breakers'
    (``MemoryBreakers``)."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, TaskRecord] = {}
        self._counts: Counter[tuple[str, State]] = Counter()
        self._activity: Counter[tuple[float, str, State]] = Counter()
        self._totals: Counter[State] = Counter()
        self._dead: dict[str, None] = {}
        self._due = _Index(frozenset({State.SCHEDULED}), _due_key)
        self._ready = _Index(frozenset({State.READY}), _lease_key)
        self._running = _Index(frozenset({State.RUNNING}), _lease_key)
        self._finished = _Index(frozenset({State.SUCCEEDED, State.CANCELLED}), _finished_key)
        self._index_of = {
            State.SCHEDULED: self._due,
            State.READY: self._ready,
            State.RUNNING: self._running,
            State.SUCCEEDED: self._finished,
            State.CANCELLED: self._finished,
        }
        # (subject, key) -> (the answer to a duplicate, created, expires)
        self._keys: dict[_Key, tuple[Created, float, float]] = {}
        self._key_expiry: list[tuple[float, _Key]] = []
        self._order: list[str] = []  # ids, ascending once sorted; deleted ids linger
        self._order_sorted = True
        self._fences: dict[str, int] = {}
        self._tables: dict[Table, dict[str, Record]] = {table: {} for table in Table}

    # -- writes --------------------------------------------------------------------------

    async def create(
        self,
        tasks: Sequence[Task],
        *,
        now: float,
        idempotency_window: float,
        ready_until: float | None = None,
    ) -> list[Created]:
        """Create tasks, honouring idempotency keys per subject and their dedup modes in
        batch order (as if published one after another); an existing id is not created
        again.

        Raises InvalidInput, creating none of the batch, for a bad subject or a payload
        that is not JSON.
        """
        for task in tasks:
            validate_subject(task.subject)
        stored = [_stored(task) for task in tasks]
        batch_keys: dict[_Key, Created] = {}
        results = []
        for task in stored:
            dedup, name = task.dedup, task.idempotency_key
            if dedup is not None and name is not None and dedup.mode is not DedupMode.THROTTLE:
                unique = dedup.mode is DedupMode.UNIQUE
                key = (task.subject, name)
                created = self._create_deduped(task, key, unique, now, idempotency_window)
                if created.created:
                    self._insert(self._new_record(task, now, ready_until))
                results.append(created)
                continue
            window = dedup.period if dedup is not None and dedup.period else idempotency_window
            existing = self._existing(task, now, window, batch_keys)
            if existing is not None:
                results.append(existing)
                continue
            if task.idempotency_key is not None:
                key = (task.subject, task.idempotency_key)
                batch_keys[key] = Created(task.id, False, task.run_at)
                self._remember_key(key, batch_keys[key], now, now + window)
            self._insert(self._new_record(task, now, ready_until))
            results.append(Created(task.id, True, task.run_at))
        return results

    async def wake(self, ids: Sequence[str], *, now: float) -> int:
        """Make SCHEDULED tasks due later due now; return how many changed."""
        changed = 0
        for task_id in dict.fromkeys(ids):
            record = self._records.get(task_id)
            if record is not None and record.state is State.SCHEDULED and record.task.run_at > now:
                self._write(record.replace(task=record.task.replace(run_at=now), updated_at=now))
                changed += 1
        return changed

    async def get(self, ids: Sequence[str]) -> list[TaskRecord | None]:
        """Return the record of each id, or None for an unknown id."""
        return [_out(self._records.get(task_id)) for task_id in ids]

    async def take_due(
        self, *, now: float, limit: int, ready_until: float, fence: Fence | None = None
    ) -> list[Task]:
        """Move due SCHEDULED tasks to READY: by run_at, then priority (high first), then id."""
        self._check_fence(fence)
        taken: list[Task] = []
        while len(taken) < limit:
            record = self._due.pop(self._records, lambda entry: entry[0] <= now)
            if record is None:
                break
            record = record.replace(state=State.READY, lease_until=ready_until, updated_at=now)
            self._write(record)
            taken.append(_stored(record.task))
        return taken

    async def release(self, ids: Sequence[str], *, now: float) -> None:
        """Move READY tasks back to SCHEDULED; others are untouched."""
        for task_id in ids:
            record = self._records.get(task_id)
            if record is not None and record.state is State.READY:
                self._write(record.replace(state=State.SCHEDULED, lease_until=None, updated_at=now))

    async def stamp_ready(self, ids: Sequence[str], *, ready_until: float) -> None:
        """Give READY tasks ``lease_until=ready_until``; others are untouched."""
        for task_id in ids:
            record = self._records.get(task_id)
            if record is not None and record.state is State.READY:
                self._write(record.replace(lease_until=ready_until))

    async def claim(
        self, ids: Sequence[str], *, owner: str, now: float, lease_until: float
    ) -> list[Claim]:
        """Lease READY tasks (or RUNNING ones whose lease expired) to ``owner``, attempt + 1."""
        claims = []
        for task_id in ids:
            record = self._records.get(task_id)
            if record is None or not self._claimable(record, now):
                claims.append(Claim(_out(record), False))
                continue
            task = record.task.replace(attempt=record.task.attempt + 1)
            record = record.replace(
                task=task,
                state=State.RUNNING,
                lease_owner=owner,
                lease_until=lease_until,
                updated_at=now,
            )
            self._write(record)
            claims.append(Claim(_out(record), True))
        return claims

    async def heartbeat(
        self, ids: Sequence[str], *, owner: str, lease_until: float
    ) -> list[LeaseStatus]:
        """Extend ``owner``'s RUNNING leases; LOST where the task is no longer its."""
        statuses = []
        for task_id in ids:
            record = self._records.get(task_id)
            if record is None or record.state is not State.RUNNING or record.lease_owner != owner:
                statuses.append(LeaseStatus.LOST)
                continue
            self._write(record.replace(lease_until=lease_until))
            cancel = record.cancel_requested
            statuses.append(LeaseStatus.CANCEL_REQUESTED if cancel else LeaseStatus.HELD)
        return statuses

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes to tasks still RUNNING under their owner; False changed nothing.

        Raises InvalidInput, applying none, for an outcome state other than SUCCEEDED,
        SCHEDULED, DEAD or CANCELLED, or a result that is not JSON.
        """
        for outcome in outcomes:
            if outcome.state not in _OUTCOME_STATES:
                raise InvalidInput(f"task {outcome.task_id}: cannot finish as {outcome.state}")
        results = [_detach(outcome.result) for outcome in outcomes]
        applied = []
        for outcome, result in zip(outcomes, results, strict=True):
            record = self._records.get(outcome.task_id)
            if (
                record is None
                or record.state is not State.RUNNING
                or record.lease_owner != outcome.owner
            ):
                applied.append(False)
                continue
            self._write(_finished(record, outcome, result))
            applied.append(True)
        return applied

    async def cancel(self, ids: Sequence[str], *, now: float) -> list[TaskRecord | None]:
        """Cancel SCHEDULED and READY tasks; flag RUNNING ones; leave finished ones."""
        records = []
        for task_id in ids:
            record = self._records.get(task_id)
            if record is not None and record.state in _PENDING:
                record = _cancelled(record, now)
                self._write(record)
            elif (
                record is not None and record.state is State.RUNNING and not record.cancel_requested
            ):
                record = record.replace(cancel_requested=True, updated_at=now)
                self._write(record)
            records.append(_out(record))
        return records

    async def recover(
        self,
        *,
        now: float,
        limit: int,
        default_max_attempts: int | None,
        fence: Fence | None = None,
    ) -> list[TaskRecord]:
        """Take back RUNNING tasks whose lease expired: SCHEDULED again, DEAD if spent,
        CANCELLED if a cancel was requested."""
        self._check_fence(fence)
        changed: list[TaskRecord] = []
        while len(changed) < limit:
            record = self._running.pop(self._records, lambda entry: entry[0] <= now)
            if record is None:
                break
            record = recovered(record, now, default_max_attempts)
            self._write(record)
            changed.append(record)
        return _out_all(changed)

    async def redispatch(
        self,
        *,
        now: float,
        limit: int,
        ready_until: float,
        fence: Fence | None = None,
        everything: bool = False,
    ) -> list[Task]:
        """Restamp READY tasks never claimed in time (or all of them), oldest stamp first.

        A restamped task moves behind the others, so repeated calls with ``everything``
        page through every READY task.
        """
        self._check_fence(fence)
        picked: dict[str, TaskRecord] = {}
        while len(picked) < limit:
            record = self._ready.pop(self._records, lambda e: everything or e[0] <= now)
            if record is None:
                break
            picked[record.id] = record
        for record in picked.values():
            self._write(record.replace(lease_until=ready_until, updated_at=now))
        return [_stored(record.task) for record in picked.values()]

    async def requeue(self, requests: Sequence[Requeue], *, now: float) -> list[TaskRecord | None]:
        """Give DEAD tasks a new life at ``run_at`` with attempt 0; errors are kept."""
        payloads = [_detach(r.payload) if r.replace_payload else None for r in requests]
        records = []
        for request, payload in zip(requests, payloads, strict=True):
            record = self._records.get(request.task_id)
            if record is not None and record.state is State.DEAD:
                record = _requeued(record, request, payload, now)
                self._write(record)
            records.append(_out(record))
        return records

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete DEAD tasks (the given ones, or all); return how many were deleted."""
        if ids is None:
            doomed = list(self._dead)
        else:
            doomed = [task_id for task_id in dict.fromkeys(ids) if task_id in self._dead]
        for task_id in doomed:
            self._delete(task_id)
        return len(doomed)

    async def prune(self, *, finished_before: float, now: float, limit: int) -> int:
        """Delete up to ``limit`` SUCCEEDED or CANCELLED tasks finished before the time,
        oldest first, and every idempotency key whose window has closed."""
        deleted = 0
        while deleted < limit:
            record = self._finished.pop(self._records, lambda e: e[0] < finished_before)
            if record is None:
                break
            self._delete(record.id)
            deleted += 1
        self._forget_keys(now)
        self._forget_activity(now)
        return deleted

    async def close(self) -> None:
        """Nothing to release: the tasks stay with this object, which remains usable."""

    # -- reads ---------------------------------------------------------------------------

    async def query(self, query: TaskQuery) -> Page:
        """List records newest first (by id); the cursor is the last id of the page."""
        if query.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {query.limit!r}")
        check_query(query)
        wanted = compile_pattern(query.subject) if query.subject is not None else None
        key = key_of(query)
        order = self._sorted_ids() if key is None else self._keyed(key)
        low, high = id_bounds(query)
        start = 0 if low is None else bisect.bisect_left(order, low)
        stop = len(order) if high is None else bisect.bisect_left(order, high)
        items: list[TaskRecord] = []
        for index in range(stop - 1, start - 1, -1):
            record = self._records.get(order[index])
            if record is None or (index + 1 < stop and order[index + 1] == order[index]):
                continue
            if query.states is not None and record.state not in query.states:
                continue
            if wanted is None or wanted(record.subject):
                items.append(record)
                if len(items) > query.limit:
                    return Page(_out_all(items[: query.limit]), items[query.limit - 1].id)
        return Page(_out_all(items), None)

    async def counts(self) -> dict[tuple[str, State], int]:
        """Return how many tasks each (subject, state) holds; zero counts are left out."""
        return dict(self._counts)

    async def activity(self, *, since: float) -> list[ActivityCount]:
        """The non-zero buckets from ``since``'s bucket on, oldest first."""
        start = _bucket(since)
        found = sorted(key for key in self._activity if key[0] >= start)
        return [
            ActivityCount(at, subject, state, self._activity[at, subject, state])
            for at, subject, state in found
        ]

    async def oldest_due(self) -> float | None:
        """The run_at at the top of the due index."""
        record = self._due.first(self._records)
        return None if record is None else record.task.run_at

    async def oldest_ready(self, *, limit: int) -> dict[str, float]:
        """The earliest run_at per subject among the ``limit`` READY tasks published first."""
        ready = self._ready.live(self._records)
        first = heapq.nsmallest(max(limit, 0), ready, key=lambda r: (r.lease_until or 0.0, r.id))
        oldest: dict[str, float] = {}
        for record in first:
            run_at = record.task.run_at
            if run_at < oldest.get(record.subject, math.inf):
                oldest[record.subject] = run_at
        return oldest

    # -- records (the ScheduleStore and WorkflowStore methods come from RecordStore) -----

    async def read_records(self, table: Table, keys: Sequence[str]) -> dict[str, Record]:
        """Return the stored record of each key that has one."""
        return self._read_records(table, keys)

    async def scan_records(self, table: Table, scan: Scan) -> list[Record]:
        """Return the records ``scan`` selects; a scan, as records are few next to tasks."""
        return scan.select(self._tables[table].values())

    async def due_records(self, table: Table, *, now: float, limit: int) -> list[Record]:
        """Return records with ``due <= now``, earliest first; a scan."""
        rows = self._tables[table].values()
        due = [r for r in rows if r.due is not None and r.due <= now]
        return sorted(due, key=_due_order)[: max(limit, 0)]

    async def change_records(
        self, table: Table, keys: Sequence[str], decide: Decide[T], *, fence: Fence | None = None
    ) -> T:
        """Check the fence, decide over the current records, apply the change."""
        self._check_fence(fence)
        change = decide(self._read_records(table, keys))
        rows = self._tables[table]
        for key in change.deletes:
            rows.pop(key, None)
        rows.update((record.key, record) for record in change.writes)
        return change.result

    def _read_records(self, table: Table, keys: Sequence[str]) -> dict[str, Record]:
        rows = self._tables[table]
        return {key: rows[key] for key in keys if key in rows}

    def _existing(
        self, task: Task, now: float, window: float, batch_keys: dict[_Key, Created]
    ) -> Created | None:
        """The answer for a ``task`` that duplicates one through its subject's idempotency
        key or its own id, if it does."""
        if task.idempotency_key is not None:
            key = (task.subject, task.idempotency_key)
            if key in batch_keys:
                return batch_keys[key]
            found = self._keys.get(key)
            if found is not None and now - found[1] < window:
                return found[0]
        record = self._records.get(task.id)
        return None if record is None else Created(task.id, False, record.task.run_at)

    def _create_deduped(
        self, task: Task, key: _Key, unique: bool, now: float, window: float
    ) -> Created:
        """The answer for a debounce or unique ``task`` under ``key``: refused while the
        key's task is active (unique), else created, replacing the key's pending task
        (debounce). The caller inserts a created task."""
        found = self._keys.get(key)
        current = self._records.get(found[0].id) if found is not None else None
        if unique and found is not None and current is not None and current.state in _ACTIVE:
            return found[0]
        if task.id in self._records:
            return Created(task.id, False, self._records[task.id].task.run_at)
        replaced = None
        if not unique and current is not None and _replaceable(current):
            self._write(_cancelled(current, now))
            replaced = current.id
        hold = max(_UNIQUE_HOLD, window) if unique else window
        self._remember_key(key, Created(task.id, False, task.run_at), now, task.run_at + hold)
        return Created(task.id, True, task.run_at, replaced)

    def _remember_key(self, key: _Key, answer: Created, now: float, expires: float) -> None:
        self._keys[key] = (answer, now, expires)
        heapq.heappush(self._key_expiry, (expires, key))

    def _forget_keys(self, now: float) -> None:
        expiry = self._key_expiry
        while expiry and expiry[0][0] <= now:
            expires, key = heapq.heappop(expiry)
            found = self._keys.get(key)
            if found is not None and found[2] == expires:
                del self._keys[key]

    def _forget_activity(self, now: float) -> None:
        """Drop the buckets that ended more than ``ACTIVITY_KEPT`` before ``now``."""
        cutoff = now - ACTIVITY_KEPT - ACTIVITY_BUCKET
        for key in [key for key in self._activity if key[0] <= cutoff]:
            del self._activity[key]

    def _new_record(self, task: Task, now: float, ready_until: float | None) -> TaskRecord:
        if ready_until is not None and task.run_at <= now:
            return TaskRecord(task, State.READY, updated_at=now, lease_until=ready_until)
        return TaskRecord(task, State.SCHEDULED, updated_at=now)

    def _insert(self, record: TaskRecord) -> None:
        order = self._order
        if order and record.id < order[-1]:
            self._order_sorted = False
        order.append(record.id)
        self._write(record)

    def _write(self, record: TaskRecord) -> None:
        """Store ``record`` over its previous version, keeping counts and indexes true."""
        old = self._records.get(record.id)
        if old is not None:
            self._uncount(old)
            if _ends_attempt(old.state, record.state):
                self._activity[_bucket(record.updated_at), record.subject, record.state] += 1
        self._records[record.id] = record
        self._counts[record.subject, record.state] += 1
        self._totals[record.state] += 1
        if record.state is State.DEAD:
            self._dead[record.id] = None
        index = self._index_of.get(record.state)
        if index is not None:
            index.add(record)
            index.compact(self._records, self._totals)

    def _delete(self, task_id: str) -> None:
        record = self._records.pop(task_id)
        self._uncount(record)
        if len(self._order) > 2 * len(self._records) + _SLACK:
            self._order = sorted(self._records)
            self._order_sorted = True

    def _uncount(self, record: TaskRecord) -> None:
        key = (record.subject, record.state)
        self._counts[key] -= 1
        if not self._counts[key]:
            del self._counts[key]
        self._totals[record.state] -= 1
        if record.state is State.DEAD:
            del self._dead[record.id]

    def _keyed(self, key: _Key) -> list[str]:
        """The id of the task holding idempotency ``key`` (subject, key), if one does."""
        found = self._keys.get(key)
        return [] if found is None else [found[0].id]

    def _sorted_ids(self) -> list[str]:
        if not self._order_sorted:
            self._order.sort()
            self._order_sorted = True
        return self._order

    def _claimable(self, record: TaskRecord, now: float) -> bool:
        if record.state is State.READY:
            return True
        return record.state is State.RUNNING and (record.lease_until or 0.0) <= now

    def _check_fence(self, fence: Fence | None) -> None:
        """Raise FencedOut for a token older than the newest seen under its name."""
        if fence is None:
            return
        newest = self._fences.get(fence.name)
        if newest is not None and fence.token < newest:
            raise FencedOut(
                f"fence {fence.name!r}: token {fence.token} is older than {newest}; "
                "another leader has taken over"
            )
        self._fences[fence.name] = fence.token


def _cancelled(record: TaskRecord, now: float) -> TaskRecord:
    return record.replace(
        state=State.CANCELLED, finished_at=now, updated_at=now, lease_owner=None, lease_until=None
    )


def _replaceable(record: TaskRecord) -> bool:
    """Whether a debounce may cancel ``record``: pending and never started."""
    return record.state in _PENDING and record.task.attempt == 0


def _finished(record: TaskRecord, outcome: Outcome, result: JSON) -> TaskRecord:
    """The record after ``outcome`` ended the attempt it holds."""
    changes: dict[str, Any] = {
        "state": outcome.state,
        "updated_at": outcome.at,
        "lease_owner": _last_owner(record, outcome),
        "lease_until": None,
    }
    if outcome.error is not None:
        changes["errors"] = record.with_error(outcome.error)
    attempt = max(record.task.attempt - 1, 0) if outcome.refund else record.task.attempt
    if outcome.state is State.SCHEDULED:
        run_at = outcome.at if outcome.run_at is None else outcome.run_at
        changes["task"] = record.task.replace(run_at=run_at, attempt=attempt)
    else:
        if outcome.refund:
            changes["task"] = record.task.replace(attempt=attempt)
        changes["finished_at"] = outcome.at
    if outcome.state is State.SUCCEEDED:
        changes["result"] = result
    return record.replace(**changes)


def _last_owner(record: TaskRecord, outcome: Outcome) -> str | None:
    """A SUCCEEDED task keeps the worker that ran it (its state, not its owner, says it
    holds no lease); every other outcome clears it."""
    return record.lease_owner if outcome.state is State.SUCCEEDED else None


def _requeued(record: TaskRecord, request: Requeue, payload: JSON, now: float) -> TaskRecord:
    """The record of a DEAD task given a new life by ``request``."""
    task = record.task.replace(attempt=0, run_at=request.run_at)
    if request.replace_payload:
        task = task.replace(payload=payload)
    return record.replace(
        task=task,
        state=State.SCHEDULED,
        updated_at=now,
        finished_at=None,
        result=None,
        lease_owner=None,
        lease_until=None,
        cancel_requested=False,
    )


def _due_order(record: Record) -> tuple[float, str]:
    return (record.due or 0.0, record.key)


_STORE: type[TaskStore] = MemoryStore
_AGES: type[ReadyAges] = MemoryStore
_ACTIVITY: type[Activity] = MemoryStore
_SCHEDULES: type[ScheduleStore] = MemoryStore
_WORKFLOWS: type[WorkflowStore] = MemoryStore
_LEDGER: type[FlowLedger] = MemoryStore
_BREAKERS: type[BreakerLedger] = MemoryStore
