"""The SQLite TaskStore: durable, embedded, shared safely by the processes of one machine.

Every method is one transaction run in one hop to the connection's thread, however many
tasks it touches. Writes take the file's write lock at ``BEGIN IMMEDIATE``, so each
compare-and-set is atomic against every other connection to the file, in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from atp.core.model import State, Task, TaskRecord
from atp.core.ports import (
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
from atp.plugins.sqlite import _admin, _flow
from atp.plugins.sqlite._breakers import SqliteBreakers
from atp.plugins.sqlite._db import Database
from atp.plugins.sqlite._ledger import SqliteFlowLedger
from atp.plugins.sqlite._records import SqliteRecords
from atp.plugins.sqlite._url import SqliteTarget, parse_url

__all__ = ["SqliteStore"]


class SqliteStore(SqliteFlowLedger, SqliteBreakers, SqliteRecords):
    """A TaskStore in one SQLite file (or one private in-memory database).

    Opens the file on first use, creating the tables if needed; a missing directory is a
    ConfigError. With ``synchronous=full`` (the default) a task is on disk once ``create``
    returns. SQLite errors surface as BackendUnavailable (a lock held past the busy
    timeout, a full disk) or ConfigError (not a database, read-only, cannot be opened).
    """

    def __init__(self, target: SqliteTarget) -> None:
        self._db = Database(target, thread_name="atp-sqlite-store")

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """Build a store for a ``sqlite://`` URL; raise InvalidInput if it is malformed."""
        return cls(parse_url(url, "sqlite"))

    @property
    def target(self) -> SqliteTarget:
        return self._db.target

    async def create(
        self,
        tasks: Sequence[Task],
        *,
        now: float,
        idempotency_window: float,
        ready_until: float | None = None,
    ) -> list[Created]:
        """Insert the batch in one transaction. A task whose id exists already is not
        written either, and comes back as ``Created(id, created=False)``. A debounce
        cancels the pending task it replaces in the same transaction."""
        if not tasks:
            return []
        work = partial(
            _flow.create, tasks=tasks, now=now, window=idempotency_window, ready_until=ready_until
        )
        return await self._db.write(work)

    async def get(self, ids: Sequence[str]) -> list[TaskRecord | None]:
        """Read every record from one snapshot."""
        return await self._db.read(partial(_admin.get, ids=ids)) if ids else []

    async def take_due(
        self, *, now: float, limit: int, ready_until: float, fence: Fence | None = None
    ) -> list[Task]:
        """One ``UPDATE ... RETURNING`` over the due index, under the write lock."""
        work = partial(_flow.take_due, now=now, limit=limit, ready_until=ready_until, fence=fence)
        return await self._db.write(work)

    async def release(self, ids: Sequence[str], *, now: float) -> None:
        """Move READY tasks back to SCHEDULED in one transaction."""
        if ids:
            await self._db.write(partial(_flow.release, ids=ids, now=now))

    async def stamp_ready(self, ids: Sequence[str], *, ready_until: float) -> None:
        """Restamp READY tasks in one transaction."""
        if ids:
            await self._db.write(partial(_flow.stamp_ready, ids=ids, ready_until=ready_until))

    async def claim(
        self, ids: Sequence[str], *, owner: str, now: float, lease_until: float
    ) -> list[Claim]:
        """Claim the batch in one transaction; a repeated id is claimed at most once."""
        if not ids:
            return []
        work = partial(_flow.claim, ids=ids, owner=owner, now=now, lease_until=lease_until)
        return await self._db.write(work)

    async def heartbeat(
        self, ids: Sequence[str], *, owner: str, lease_until: float
    ) -> list[LeaseStatus]:
        """Extend the leases in one transaction. A lease that expired but was not taken
        over is still held (the store is given no ``now`` to tell)."""
        if not ids:
            return []
        return await self._db.write(
            partial(_flow.heartbeat, ids=ids, owner=owner, lease_until=lease_until)
        )

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply the batch in one transaction; an outcome whose state is not SUCCEEDED,
        SCHEDULED, DEAD or CANCELLED is InvalidInput and nothing is applied."""
        if not outcomes:
            return []
        return await self._db.write(partial(_flow.finish, outcomes=outcomes))

    async def cancel(self, ids: Sequence[str], *, now: float) -> list[TaskRecord | None]:
        """Cancel the batch in one transaction."""
        if not ids:
            return []
        return await self._db.write(partial(_flow.cancel, ids=ids, now=now))

    async def recover(
        self,
        *,
        now: float,
        limit: int,
        default_max_attempts: int | None,
        fence: Fence | None = None,
    ) -> list[TaskRecord]:
        """Recover expired leases, the longest expired first, in one transaction."""
        work = partial(
            _flow.recover, now=now, limit=limit, default_max=default_max_attempts, fence=fence
        )
        return await self._db.write(work)

    async def redispatch(
        self,
        *,
        now: float,
        limit: int,
        ready_until: float,
        fence: Fence | None = None,
        everything: bool = False,
    ) -> list[Task]:
        """Restamp the READY tasks whose lease ran out first, in one transaction."""
        work = partial(
            _flow.redispatch,
            now=now,
            limit=limit,
            ready_until=ready_until,
            fence=fence,
            everything=everything,
        )
        return await self._db.write(work)

    async def query(self, query: TaskQuery) -> Page:
        """List by id, descending (ids sort by creation time); ``next_cursor`` is the last
        id of the page. InvalidInput for a malformed pattern or a limit below 1."""
        return await self._db.read(partial(_admin.query, query=query))

    async def counts(self) -> dict[tuple[str, State], int]:
        """Read the counts the triggers keep, in one read (never a scan of the tasks)."""
        return await self._db.read(_admin.counts)

    async def activity(self, *, since: float) -> list[ActivityCount]:
        """Read the buckets the triggers keep, in one read; ``prune`` drops the old ones."""
        return await self._db.read(partial(_admin.activity, since=since))

    async def oldest_due(self) -> float | None:
        """Read the first entry of the due index."""
        return await self._db.read(_admin.oldest_due)

    async def oldest_ready(self, *, limit: int) -> dict[str, float]:
        """One read over the lease index's first ``limit`` READY rows."""
        return await self._db.read(partial(_admin.oldest_ready, limit=limit))

    async def requeue(self, requests: Sequence[Requeue], *, now: float) -> list[TaskRecord | None]:
        """Requeue the batch in one transaction; a repeated id is requeued once."""
        if not requests:
            return []
        return await self._db.write(partial(_admin.requeue, requests=requests, now=now))

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete in one transaction; an empty ``ids`` deletes nothing."""
        if ids is not None and not ids:
            return 0
        return await self._db.write(partial(_admin.purge, ids=ids))

    async def prune(self, *, finished_before: float, now: float, limit: int) -> int:
        """Delete in one transaction; ``limit`` bounds the keys deleted too. The activity
        buckets past ``ACTIVITY_KEPT`` and the counts that reached zero go as well."""
        work = partial(_admin.prune, finished_before=finished_before, now=now, limit=limit)
        return await self._db.write(work)

    async def close(self) -> None:
        """Wait for the calls under way, then close the file. Later calls raise
        BackendUnavailable."""
        await self._db.close()


_: type[TaskStore] = SqliteStore
_AGES: type[ReadyAges] = SqliteStore
_ACTIVITY: type[Activity] = SqliteStore
_SCHEDULES: type[ScheduleStore] = SqliteStore
_WORKFLOWS: type[WorkflowStore] = SqliteStore
_LEDGER: type[FlowLedger] = SqliteStore
_BREAKERS: type[BreakerLedger] = SqliteStore
