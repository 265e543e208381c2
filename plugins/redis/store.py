"""The Redis TaskStore: a hash per task, sorted sets as indexes, a Lua script per transition.

Every transition is one script call for the whole batch, so a batch costs one round trip
and is atomic (Redis runs a script alone). Scripts that walk an index (take_due, recover,
redispatch, prune, purge) get their candidates from one read just before and check each
again inside the script, so every key a script touches is named in its KEYS: a task another
caller took meanwhile is skipped, never taken twice.

Idempotency keys expire with Redis TTLs of their window; finished tasks are deleted by
``prune`` (the scheduler's pruner) once ``retention`` has passed; dead letters stay until
purged.

Fused with the Redis transport of the same keyspace (``fuse``), the store's shard holds the
subjects' streams too: ``create_and_publish`` stores tasks and adds their ids to their
streams in one script, and the transport's consumers claim as they fetch (``_claiming``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from atp.core.codec import dumps
from atp.core.errors import ConfigError, InvalidInput
from atp.core.listing import check_query, id_bounds, key_of
from atp.core.model import Dedup, DedupMode, State, Task, TaskRecord
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
    FusingStore,
    LeaseStatus,
    Outcome,
    Page,
    ReadyAges,
    Requeue,
    ScheduleStore,
    ServerTime,
    TaskQuery,
    TaskStore,
    Transport,
    WorkflowStore,
)
from atp.core.recovery import LEASE_EXPIRED
from atp.core.subjects import compile_pattern, validate_subject
from atp.plugins.redis._breakers import BreakerMethods
from atp.plugins.redis._connection import Link, RedisUrl, Scripts
from atp.plugins.redis._ledger import FlowLedgerMethods
from atp.plugins.redis._quarantine import quarantine, record_of, tasks_of, to_quarantine
from atp.plugins.redis._records import FIELD_COUNT, HASH_FIELDS, num, pack_outcome, pack_task
from atp.plugins.redis._schedules import ScheduleMethods
from atp.plugins.redis._workflows import WorkflowMethods
from atp.plugins.redis.keys import StoreKeys, TransportKeys
from atp.plugins.redis.transport import RedisTransport

__all__ = ["RedisStore"]

_LEASE_MESSAGE = dumps(LEASE_EXPIRED)
_STATUS = {1: LeaseStatus.HELD, 2: LeaseStatus.CANCEL_REQUESTED, 0: LeaseStatus.LOST}
_PAGE = 500
_FEW = 20_000
"""Most tasks a listing by state reads from the states' own indexes (``_few``)."""
_OWN_INDEX = {
    State.SCHEDULED: "due",
    State.READY: "ready",
    State.RUNNING: "running",
    State.DEAD: "dead",
}
"""The states whose index holds them alone (``finished`` holds two)."""
_SIFT_FIELDS = ("s", "sub")
"""The state and the subject among ``HASH_FIELDS``: what a filtered walk reads first."""
_SUBJECT_CACHE = 1000


class RedisStore(ScheduleMethods, WorkflowMethods, FlowLedgerMethods, BreakerMethods):
    """A TaskStore, ScheduleStore, WorkflowStore, FlowLedger and BreakerLedger on one Redis
    server (or one Cluster slot per shard).

    Durable as far as the server is: run Redis with ``appendonly yes`` (and
    ``appendfsync always`` to lose nothing on a power cut), or a restart loses tasks.
    """

    def __init__(self, url: RedisUrl) -> None:
        self._link = Link(url)
        self._keys = StoreKeys(url.prefix)
        self._indexes = self._keys.indexes()
        self._streams: TransportKeys | None = None
        self._heads: dict[str, list[str]] = {}
        # A create call's nonce: random per store, then counted (no syscall per call).
        self._nonce_base = os.urandom(6).hex() + "-"
        self._calls = itertools.count()

    # -- writes --------------------------------------------------------------------------

    async def create(
        self,
        tasks: Sequence[Task],
        *,
        now: float,
        idempotency_window: float,
        ready_until: float | None = None,
    ) -> list[Created]:
        """Create tasks in one script; InvalidInput, creating none, for a bad subject or a
        payload that is not JSON. A call retried after a lost reply reports its own
        tasks as created."""
        if not tasks:
            return []
        head = self._create_head(now, idempotency_window, ready_until)
        return await self._create("create", tasks, self._indexes, head)

    def fuse(self, transport: Transport) -> bool:
        """Fuse with a RedisTransport of the same server, database and key prefix: its
        streams then live in this store's shard, so one script can do both sides."""
        if not isinstance(transport, RedisTransport):
            return False
        if not transport.link.url.same_keys(self._link.url):
            return False
        self._streams = TransportKeys(self._keys.prefix, self._keys.shard)
        transport.bind(self._keys)
        return True

    async def create_and_publish(
        self, tasks: Sequence[Task], *, now: float, idempotency_window: float, ready_until: float
    ) -> list[Created]:
        """``create`` and, in the same script, the id of each task created READY added to
        its subject's stream. ConfigError unless ``fuse`` said yes."""
        if self._streams is None:
            raise ConfigError("redis store: create_and_publish needs a fused Redis transport")
        if not tasks:
            return []
        subjects = list(dict.fromkeys(task.subject for task in tasks))
        keys = self._publish_keys(subjects, self._streams)
        head = [*self._create_head(now, idempotency_window, ready_until), len(subjects), *subjects]
        return await self._create("create_publish", tasks, keys, head)

    async def get(self, ids: Sequence[str]) -> list[TaskRecord | None]:
        """Return the record of each id, or None for an unknown id (one round trip)."""
        if not ids:
            return []
        async with self._link.guard("get"), self._link.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(self._keys.task(task_id), HASH_FIELDS)
            rows = await pipe.execute()
        return [
            record_of([task_id, *row]) if row[2] is not None else None
            for task_id, row in zip(ids, rows, strict=True)
        ]

    async def take_due(
        self, *, now: float, limit: int, ready_until: float, fence: Fence | None = None
    ) -> list[Task]:
        """Move due SCHEDULED tasks to READY: by run_at, then priority (high first), then id."""
        members = await self._candidates("due", num(now), limit)
        if not members and fence is None:
            return []
        ids = [m.decode().split(":", 1)[1] for m in members]
        keys = [*self._indexes, self._fence_key(fence), *map(self._keys.task, ids)]
        args = [num(now), num(ready_until), _token(fence), *members]
        return await self._decoded(await self._run("take_due", keys, args), now)

    async def release(self, ids: Sequence[str], *, now: float) -> None:
        """Move READY tasks back to SCHEDULED; others are untouched."""
        if ids:
            await self._run("release", self._with_tasks(ids), [num(now), *ids])

    async def stamp_ready(self, ids: Sequence[str], *, ready_until: float) -> None:
        """Give READY tasks ``lease_until=ready_until``; others are untouched."""
        if ids:
            await self._run("stamp_ready", self._with_tasks(ids), [num(ready_until), *ids])

    async def claim(
        self, ids: Sequence[str], *, owner: str, now: float, lease_until: float
    ) -> list[Claim]:
        """Lease READY tasks (or RUNNING ones whose lease expired) to ``owner``, attempt + 1."""
        if not ids:
            return []
        args = [owner, num(now), num(lease_until), *ids]
        reply = await self._run("claim", self._with_tasks(ids), args)
        claims, step = [], FIELD_COUNT + 1
        for i in range(0, len(reply), step):
            flag = reply[i]
            record = record_of(reply[i + 1 : i + step]) if flag >= 0 else None
            claims.append(Claim(record, flag == 1))
        corrupt = to_quarantine([claim.record for claim in claims])
        if not corrupt:
            return claims
        await quarantine(self._link, self._keys, corrupt, now)
        return [  # undecodable: DEAD now, never run
            Claim(claim.record, False) if claim.record and claim.record.id in corrupt else claim
            for claim in claims
        ]

    async def heartbeat(
        self, ids: Sequence[str], *, owner: str, lease_until: float
    ) -> list[LeaseStatus]:
        """Extend ``owner``'s RUNNING leases; LOST where the task is no longer its."""
        if not ids:
            return []
        reply = await self._run("heartbeat", self._with_tasks(ids), [owner, num(lease_until), *ids])
        return [_STATUS[flag] for flag in reply]

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes to tasks still RUNNING under their owner; False changed nothing.

        Raises InvalidInput, applying none, for an outcome state other than SUCCEEDED,
        SCHEDULED, DEAD or CANCELLED, or a result that is not JSON.
        """
        if not outcomes:
            return []
        args = [pack_outcome(outcome) for outcome in outcomes]
        keys = self._with_tasks([outcome.task_id for outcome in outcomes])
        return [flag == 1 for flag in await self._run("finish", keys, args)]

    async def cancel(self, ids: Sequence[str], *, now: float) -> list[TaskRecord | None]:
        """Cancel SCHEDULED and READY tasks; flag RUNNING ones; leave finished ones."""
        if not ids:
            return []
        return _records(await self._run("cancel", self._with_tasks(ids), [num(now), *ids]))

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
        ids = [m.decode() for m in await self._candidates("running", num(now), limit)]
        if not ids and fence is None:
            return []
        keys = [*self._indexes, self._fence_key(fence), *map(self._keys.task, ids)]
        default = "" if default_max_attempts is None else default_max_attempts
        args = [num(now), default, _token(fence), _LEASE_MESSAGE, *ids]
        reply = await self._run("recover", keys, args)
        records = [record_of(reply[i : i + FIELD_COUNT]) for i in range(0, len(reply), FIELD_COUNT)]
        await quarantine(self._link, self._keys, to_quarantine(records), now)
        return records

    async def redispatch(
        self,
        *,
        now: float,
        limit: int,
        ready_until: float,
        fence: Fence | None = None,
        everything: bool = False,
    ) -> list[Task]:
        """Restamp READY tasks never claimed in time (or all of them), oldest stamp first;
        a restamped task moves behind the others."""
        upper = "+inf" if everything else num(now)
        ids = [m.decode() for m in await self._candidates("ready", upper, limit)]
        if not ids and fence is None:
            return []
        keys = [*self._indexes, self._fence_key(fence), *map(self._keys.task, ids)]
        args = [num(now), num(ready_until), _token(fence), "1" if everything else "0", *ids]
        return await self._decoded(await self._run("redispatch", keys, args), now)

    async def requeue(self, requests: Sequence[Requeue], *, now: float) -> list[TaskRecord | None]:
        """Give DEAD tasks a new life at ``run_at`` with attempt 0; errors are kept."""
        if not requests:
            return []
        args: list[Any] = [num(now)]
        for request in requests:
            payload = dumps(request.payload) if request.replace_payload else ""
            args += [request.task_id, num(request.run_at), payload]
        keys = self._with_tasks([request.task_id for request in requests])
        return _records(await self._run("requeue", keys, args))

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete DEAD tasks (the given ones, or all); return how many were deleted."""
        if ids is not None:
            unique = list(dict.fromkeys(ids))
            return await self._delete(unique, "DEAD", "") if unique else 0
        deleted = 0
        while True:
            async with self._link.guard("purge"):
                batch = [
                    m.decode()
                    for m in await self._link.client.zrange(self._keys.index("dead"), 0, _PAGE - 1)
                ]
            if not batch:
                return deleted
            deleted += await self._delete(batch, "DEAD", "")

    async def prune(self, *, finished_before: float, now: float, limit: int) -> int:
        """Delete up to ``limit`` SUCCEEDED or CANCELLED tasks finished before the time,
        oldest first, and up to ``limit`` activity buckets that ended more than
        ``ACTIVITY_KEPT`` before ``now``. Idempotency keys need nothing: they expire with
        their window."""
        if limit >= 1:
            last = num(now - ACTIVITY_KEPT - ACTIVITY_BUCKET)
            await self._run("activity_trim", [self._keys.activity], [last, limit])
        ids = [
            m.decode()
            for m in await self._candidates("finished", "(" + num(finished_before), limit)
        ]
        return await self._delete(ids, "SUCCEEDED CANCELLED", num(finished_before)) if ids else 0

    async def server_time(self) -> float:
        """The Redis server's clock (``TIME``), the reference for skew checks (ADR 0029)."""
        async with self._link.guard("server_time"):
            seconds, micros = await self._link.client.time()
        return float(seconds) + float(micros) / 1e6

    async def close(self) -> None:
        """Give the shared connection pool back; the data stays on the server."""
        await self._link.close()

    # -- reads ---------------------------------------------------------------------------

    async def query(self, query: TaskQuery) -> Page:
        """List records newest first (by id); the cursor is the last id of the page.

        Walks the id index (the dead-letter index when only DEAD is asked for) in pages,
        between the ids of the time range and the cursor, filtering by state and subject
        on the way; states with few tasks are read from their own indexes instead
        (``_few``). A query by idempotency key reads the one task its key names.
        """
        if query.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {query.limit!r}")
        check_query(query)
        wanted = compile_pattern(query.subject) if query.subject is not None else None
        states = {s.value.encode() for s in query.states} if query.states is not None else None
        low, high = id_bounds(query)
        key = key_of(query)
        if key is not None:
            found = [i for i in await self._keyed(*key) if _within(i, low, high)]
            return Page(_matching(await self._rows(found), states, wanted), None)
        dead_only = query.states == frozenset({State.DEAD})
        few = None if dead_only else await self._few(query.states)
        if few is not None:
            newest = sorted((i for i in few if _within(i, low, high)), reverse=True)
            return await self._page_of(newest, query.limit, states, wanted)
        index = self._keys.index("dead" if dead_only else "order")
        upper = "+" if high is None else "(" + high
        lower = "-" if low is None else "[" + low
        items: list[TaskRecord] = []
        # Unfiltered (the dead index holds only DEAD), the next limit + 1 ids are the page.
        unfiltered = wanted is None and (states is None or dead_only)
        step = query.limit + 1 if unfiltered else max(_PAGE, query.limit + 1)
        while len(items) <= query.limit:
            async with self._link.guard("query"):
                ids = await self._link.client.zrevrangebylex(index, upper, lower, 0, step)
            if not ids:
                break
            walked = [i.decode() for i in ids]
            if not unfiltered:
                walked = await self._sifted(walked, states, wanted)
            items += _matching(await self._rows(walked), states, wanted)
            upper = "(" + ids[-1].decode()
        if len(items) > query.limit:
            return Page(items[: query.limit], items[query.limit - 1].id)
        return Page(items, None)

    async def _few(self, states: frozenset[State] | None) -> list[str] | None:
        """Every id in ``states`` from their own indexes, when each has one and together
        they hold at most ``_FEW`` tasks (the counts say, in one read): a walk of the id
        index would read a million ids to find a thousand RUNNING ones. None otherwise."""
        if states is None or not states <= _OWN_INDEX.keys():
            return None
        counts = await self.counts()
        if sum(n for (_, state), n in counts.items() if state in states) > _FEW:
            return None
        chosen = sorted(states)
        # One MULTI: a task moving between two of these indexes is read in one of them.
        async with self._link.guard("query"), self._link.client.pipeline(transaction=True) as pipe:
            for state in chosen:
                pipe.zrange(self._keys.index(_OWN_INDEX[state]), 0, -1)
            found = await pipe.execute()
        # The due index's members are "<rank>:<id>"; the others' are ids.
        return [m.decode().rsplit(":", 1)[-1] for members in found for m in members]

    async def _page_of(
        self,
        ids: list[str],
        limit: int,
        states: set[bytes] | None,
        wanted: Callable[[str], bool] | None,
    ) -> Page:
        """The first ``limit`` records of ``ids`` (newest first) still matching: a task may
        have moved on between the index read and its own."""
        items: list[TaskRecord] = []
        size = limit + 1 if wanted is None else max(_PAGE, limit + 1)
        for first in range(0, len(ids), size):
            if len(items) > limit:
                break
            items += _matching(await self._rows(ids[first : first + size]), states, wanted)
        if len(items) > limit:
            return Page(items[:limit], items[limit - 1].id)
        return Page(items, None)

    async def counts(self) -> dict[tuple[str, State], int]:
        """Return how many tasks each (subject, state) holds; zero counts are left out."""
        async with self._link.guard("counts"):
            raw = await self._link.client.hgetall(self._keys.index("counts"))
        found: dict[tuple[str, State], int] = {}
        for field, value in raw.items():
            subject, state = field.decode().rsplit(" ", 1)
            if int(value) > 0:
                found[subject, State(state)] = int(value)
        return found

    async def activity(self, *, since: float) -> list[ActivityCount]:
        """Read the index's buckets from ``since``'s on, then every one of them in one
        pipeline: two round trips. A bucket whose key expired is left out."""
        start = math.floor(since / ACTIVITY_BUCKET) * ACTIVITY_BUCKET
        async with self._link.guard("activity"):
            starts = await self._link.client.zrangebyscore(self._keys.activity, num(start), "+inf")
            if not starts:
                return []
            async with self._link.client.pipeline(transaction=False) as pipe:
                for member in starts:
                    pipe.hgetall(self._keys.activity_bucket(member.decode()))
                buckets = await pipe.execute()
        return [
            count
            for member, fields in zip(starts, buckets, strict=True)
            for count in _bucket_counts(float(member), fields)
        ]

    async def oldest_due(self) -> float | None:
        """The first score of the due index, in one command."""
        async with self._link.guard("oldest_due"):
            first = await self._link.client.zrange(self._keys.index("due"), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def oldest_ready(self, *, limit: int) -> dict[str, float]:
        """Read the ready index's first ``limit`` ids, then their subject and run_at in
        one read-only script (about 3 µs a task inside Redis)."""
        ids = await self._candidates("ready", "+inf", limit)
        if not ids:
            return {}
        reply = await self._run("oldest_ready", [self._keys.task(i.decode()) for i in ids], [])
        return {reply[i].decode(): float(reply[i + 1]) for i in range(0, len(reply), 2)}

    # -- internals -----------------------------------------------------------------------

    async def _decoded(self, reply: list[Any], now: float) -> list[Task]:
        """The tasks of a ``take_due`` or ``redispatch`` reply; those that cannot be
        decoded are made DEAD and left out (ADR 0027)."""
        tasks, corrupt = tasks_of(reply)
        await quarantine(self._link, self._keys, corrupt, now)
        return tasks

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        async with self._link.guard(script):
            return await Scripts.run(self._link, script, keys, args)

    async def _create(
        self, script: str, tasks: Sequence[Task], head_keys: list[str], head: list[Any]
    ) -> list[Created]:
        keys, args, idempotency = [*head_keys], [*head], []
        for task in tasks:  # one pass: the batch's loop is the hot path of a big publish
            validate_subject(task.subject)
            packed = pack_task(task)
            keys.append(self._keys.task(task.id))
            if task.idempotency_key:
                if task.dedup is not None:
                    packed = _with_dedup(packed, task.dedup)
                idempotency.append(self._keys.idempotency(task.subject, task.idempotency_key))
                idempotency.append(self._keys.unscoped_idempotency(task.idempotency_key))
            args.append(packed)
        reply = await self._run(script, keys + idempotency, args)
        end = 3 * len(tasks)
        created = [
            Created(reply[i].decode(), reply[i + 1] == 1, float(reply[i + 2]))
            for i in range(0, end, 3)
        ]
        for i in range(end, len(reply), 2):  # debounce: (number, replaced id) pairs
            number = reply[i] - 1
            created[number] = dataclasses.replace(created[number], replaced=reply[i + 1].decode())
        return created

    def _create_head(self, now: float, window: float, ready_until: float | None) -> list[Any]:
        """The first ARGV of create.lua: times, the keys' TTL and this call's nonce."""
        ready = "" if ready_until is None else num(ready_until)
        nonce = f"{self._nonce_base}{next(self._calls):x}"
        return [num(now), num(window), ready, max(int(window * 1000), 1), nonce]

    def _publish_keys(self, subjects: list[str], streams: TransportKeys) -> list[str]:
        """The head KEYS of create_publish; those of a one-subject batch kept per subject."""
        if len(subjects) > 1:
            return [*self._indexes, streams.subjects, *map(streams.stream, subjects)]
        keys = self._heads.get(subjects[0])
        if keys is None:
            keys = [*self._indexes, streams.subjects, streams.stream(subjects[0])]
            if len(self._heads) < _SUBJECT_CACHE:  # bounded: subjects repeat, tasks don't
                self._heads[subjects[0]] = keys
        return keys

    async def _candidates(self, index: str, upper: str, limit: int) -> list[bytes]:
        if limit < 1:
            return []
        async with self._link.guard(f"reading the {index} index"):
            found: list[bytes] = await self._link.call(
                "ZRANGEBYSCORE", self._keys.index(index), "-inf", upper, "LIMIT", 0, limit
            )
        return found

    async def _keyed(self, subject: str, key: str) -> list[str]:
        """The id of the task holding idempotency ``key`` of ``subject``: its scoped key,
        else the key as named before ADR 0028 (``query`` keeps only the subject's task).
        Both expire with their window, so a closed one names nothing."""
        scoped = self._keys.idempotency(subject, key)
        legacy = self._keys.unscoped_idempotency(key)
        async with self._link.guard("query"):
            held = await self._link.client.mget([scoped, legacy])
        found = next((value for value in held if value is not None), None)
        return [] if found is None else [found.split(b" ", 1)[0].decode()]

    async def _sifted(
        self, ids: list[str], states: set[bytes] | None, wanted: Callable[[str], bool] | None
    ) -> list[str]:
        """The ids whose state and subject match, read two fields a task: a walk past
        many tasks that do not match reads only their records' state and subject."""
        async with self._link.guard("query"), self._link.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(self._keys.task(task_id), _SIFT_FIELDS)
            rows = await pipe.execute()
        return [
            task_id
            for task_id, (state, subject) in zip(ids, rows, strict=True)
            if state is not None
            and (states is None or state in states)
            and (wanted is None or wanted(subject.decode()))
        ]

    async def _rows(self, ids: list[str]) -> list[list[Any] | None]:
        """Each id's record as a script replies it (the id, then ``HASH_FIELDS``); None
        for an unknown id."""
        async with self._link.guard("query"), self._link.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(self._keys.task(task_id), HASH_FIELDS)
            rows = await pipe.execute()
        return [
            [task_id, *row] if row[2] is not None else None
            for task_id, row in zip(ids, rows, strict=True)
        ]

    async def _delete(self, ids: list[str], states: str, before: str) -> int:
        deleted: int = await self._run("delete", self._with_tasks(ids), [states, before, *ids])
        return deleted

    def _with_tasks(self, ids: Sequence[str]) -> list[str]:
        return [*self._indexes, *map(self._keys.task, ids)]

    def _fence_key(self, fence: Fence | None) -> str:
        return self._keys.fence(fence.name if fence is not None else "-")


_DEDUP_CODES = {DedupMode.THROTTLE: b"t", DedupMode.DEBOUNCE: b"d", DedupMode.UNIQUE: b"u"}


def _with_dedup(packed: bytes, dedup: Dedup) -> bytes:
    """A packed task with its dedup mode after its max_attempts (see create.lua)."""
    fields = packed.split(b"\n", 6)
    period = b"" if dedup.period is None else num(dedup.period).encode()
    fields[5] += b":" + _DEDUP_CODES[dedup.mode] + period
    return b"\n".join(fields)


def _bucket_counts(at: float, fields: dict[bytes, bytes]) -> list[ActivityCount]:
    """The non-zero counts of one activity bucket's hash, by subject and state."""
    counts = []
    for field, value in sorted(fields.items()):
        subject, state = field.decode().rsplit(" ", 1)
        if int(value) > 0:
            counts.append(ActivityCount(at, subject, State(state), int(value)))
    return counts


def _token(fence: Fence | None) -> str:
    return "" if fence is None else str(fence.token)


def _within(task_id: str, low: str | None, high: str | None) -> bool:
    return (low is None or task_id >= low) and (high is None or task_id < high)


def _matching(
    rows: list[list[Any] | None], states: set[bytes] | None, wanted: Callable[[str], bool] | None
) -> list[TaskRecord]:
    """The records of ``rows`` in one of ``states`` whose subject is ``wanted``."""
    return [
        record_of(row)
        for row in rows
        if row is not None
        and (states is None or row[3] in states)
        and (wanted is None or wanted(row[13].decode()))
    ]


def _records(reply: list[Any]) -> list[TaskRecord | None]:
    step = FIELD_COUNT + 1
    return [
        record_of(reply[i + 1 : i + step]) if reply[i] >= 0 else None
        for i in range(0, len(reply), step)
    ]


_STORE: type[TaskStore] = RedisStore
_AGES: type[ReadyAges] = RedisStore
_ACTIVITY: type[Activity] = RedisStore
_FUSING: type[FusingStore] = RedisStore
_SCHEDULES: type[ScheduleStore] = RedisStore
_WORKFLOWS: type[WorkflowStore] = RedisStore
_SERVER_TIME: type[ServerTime] = RedisStore
_FLOW: type[FlowLedger] = RedisStore
_BREAKERS: type[BreakerLedger] = RedisStore
