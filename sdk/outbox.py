"""``Outbox``: a producer's durable local queue of the publishes its store could not take.

One SQLite file (WAL, ``synchronous=FULL``: a kept publish is on this host's disk when
the call returns) with three tables::

    entries   seq, task_id, request (the publish as JSON, its idempotency key in it), created_at
    rejected  the same, plus rejected_at and the store's refusal: never retried
    lease     one row: which Outbox delivers now, until when

``drain`` delivers the entries oldest first, in batches, and deletes a batch only once the
store has acknowledged it; an entry the store refuses as bad input moves to ``rejected``
and never holds up the ones behind it. Every entry carries its task id and an idempotency
key, so a batch delivered twice (a crash between the store's answer and the delete, two
processes on one file) creates each task once (ADR 0043). Any number of processes may
share the file: the lease row lets one of them deliver at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from atp.core.errors import (
    AlreadyExists,
    AtpError,
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    NotFound,
    StateConflict,
)
from atp.core.ids import new_id
from atp.core.ports import Clock
from atp.core.service import Published, PublishRequest
from atp.sdk.wire.rest import request_in, request_out

__all__ = ["Outbox", "OutboxEntry", "Send", "keepable"]

log = logging.getLogger("atp.outbox")

BATCH = 500
"""Entries delivered per store call."""
LEASE = 60.0
"""Seconds the deliverer's lease lasts; renewed before each batch."""
BUSY_TIMEOUT_MS = 10_000
"""How long a write waits for another process's transaction on the file."""
REFUSALS = (InvalidInput, AlreadyExists, StateConflict, NotFound)
"""What the store answers an entry it will never take (bad input, a key taken by another
task): the entry is moved to ``rejected``. Any other error (BackendUnavailable, a
ConfigError of this producer) is raised, the entries kept for a later try."""

Send = Callable[[list[PublishRequest]], Awaitable[list[Published]]]
"""How the outbox hands a batch to the store: ``TaskService.publish``."""

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    rejected_at REAL NOT NULL,
    error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One publish kept in the outbox (or refused by the store: then ``error`` says why)."""

    seq: int
    task_id: str
    request: PublishRequest
    created_at: float
    error: str | None = None


def keepable(request: PublishRequest) -> bool:
    """Whether the outbox may keep ``request``: not a debounce, throttle or unique publish
    (a late delivery would change what its key means), nor one atp derives (cron, workflow)."""
    return request.dedup is None and request.schedule is None and request.workflow_run is None


class Outbox:
    """The outbox file at ``path``; opened on first use, shared safely between processes.

    Methods are coroutines that run SQLite in a worker thread, one call at a time.
    """

    def __init__(self, path: str | os.PathLike[str], clock: Clock) -> None:
        self.path = Path(path).expanduser()
        self._clock = clock
        self._holder = f"{os.getpid()}:{os.urandom(4).hex()}"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def prepare(self, requests: Sequence[PublishRequest]) -> list[PublishRequest]:
        """The requests as they are first tried: each with its task id chosen here and its
        delay turned into a ``run_at``, so a later try of it (from the outbox, after an
        answer that never came) is the same task at the same time. A store never creates
        an id twice, so a try that did reach it is not repeated."""
        now = self._clock.now()
        return [_prepared(request, now) for request in requests]

    async def put(self, requests: Sequence[PublishRequest]) -> list[Published]:
        """Keep prepared ``requests`` on disk (one transaction, synced) and return them as
        accepted locally (``in_outbox``); their tasks are created when ``drain`` runs.

        Each is kept with an idempotency key, its task id if it had none, so a delivery
        repeated within the key's window creates nothing either (ADR 0043)."""
        now = self._clock.now()
        rows = [(r.task_id, _encode(_keyed(r)), now) for r in requests]
        await self._run(_insert, rows)
        return [
            Published(str(r.task_id), True, now if r.run_at is None else r.run_at, in_outbox=True)
            for r in requests
        ]

    async def pending(self) -> int:
        """How many publishes wait in the outbox."""
        return await self._run(_count, "entries")

    async def entries(self, limit: int = 100) -> list[OutboxEntry]:
        """The oldest ``limit`` waiting publishes."""
        return [_entry(row) for row in await self._run(_select, "entries", limit)]

    async def rejected(self, limit: int = 100) -> list[OutboxEntry]:
        """The oldest ``limit`` publishes the store refused, each with its ``error``."""
        return [_entry(row) for row in await self._run(_select, "rejected", limit)]

    async def drain(self, send: Send, batch: int = BATCH) -> int | None:
        """Deliver every waiting publish, oldest first, ``batch`` at a time; return how many
        the store took, or None if another process holds the lease (it delivers them).

        A batch is deleted only after ``send`` returned. An entry refused for good
        (``REFUSALS``) moves to ``rejected`` and is logged; any other error
        (BackendUnavailable: the store is away again) is raised, the undelivered entries
        kept.
        """
        delivered = 0
        try:  # the claim too: a call cancelled mid-claim may still have taken the lease
            if not await self._run(_claim, self._holder, self._clock.now()):
                return None
            while rows := await self._run(_take, self._holder, self._clock.now(), batch):
                delivered += await self._deliver(rows, send)
        finally:
            await self._run(_release, self._holder)  # only ever this Outbox's own lease
        return delivered

    async def close(self) -> None:
        """Close the file; what it holds stays for the next Outbox on it."""
        await asyncio.to_thread(self._close)

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    async def _deliver(self, rows: list[tuple[Any, ...]], send: Send) -> int:
        """Send one batch; on a refusal, send its entries one by one to find the bad ones."""
        rows, requests = await self._readable(rows)
        if not rows:
            return 0
        try:
            published = await send(requests)
        except REFUSALS as exc:
            if len(rows) > 1:
                return sum([await self._deliver([row], send) for row in rows])
            await self._reject(rows[0], exc)
            return 0
        await self._run(_delete, [row[0] for row in rows])
        _note_merged(rows, published)
        return len(rows)

    async def _readable(
        self, rows: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[PublishRequest]]:
        """The rows whose request decodes, and those requests; the others are rejected."""
        good, requests = [], []
        for row in rows:
            try:
                requests.append(_decode(row[2]))
            except (AtpError, ValueError, TypeError, KeyError) as exc:
                await self._reject(row, exc)
                continue
            good.append(row)
        return good, requests

    async def _reject(self, row: tuple[Any, ...], exc: BaseException) -> None:
        await self._run(_reject, row, self._clock.now(), f"{type(exc).__name__}: {exc}")
        log.error("outbox %s: task %s refused, moved to 'rejected': %s", self.path, row[1], exc)

    async def _run(self, work: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(self._locked, work, *args)

    def _locked(self, work: Callable[..., _T], *args: Any) -> _T:
        with self._lock:
            conn = self._open()
            try:
                return work(conn, *args)
            except sqlite3.Error as exc:  # a full disk, a damaged file: nothing was kept
                raise BackendUnavailable(f"outbox {str(self.path)!r}: {exc}") from exc

    def _close(self) -> None:
        with self._lock:  # not while another thread is inside a call
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                _release(conn, self._holder)  # if a cancelled drain could not
            except sqlite3.Error:
                log.warning("outbox %s: its lease is left to expire", self.path)
            conn.close()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _connect(self.path)
        return self._conn


def _prepared(request: PublishRequest, now: float) -> PublishRequest:
    task_id = request.task_id or new_id(now)
    delay = request.delay
    if request.run_at is not None or not _valid_delay(delay):  # refused as it is, later
        return dataclasses.replace(request, task_id=task_id)
    run_at = None if delay is None else now + delay
    return dataclasses.replace(request, task_id=task_id, delay=None, run_at=run_at)


def _valid_delay(delay: float | None) -> bool:
    """Whether TaskService would take ``delay`` as it is (bar ``max_delay``)."""
    return delay is None or (type(delay) in (int, float) and math.isfinite(delay) and delay >= 0)


def _keyed(request: PublishRequest) -> PublishRequest:
    if request.idempotency_key is not None:
        return request
    return dataclasses.replace(request, idempotency_key=request.task_id)


def _encode(request: PublishRequest) -> str:
    return orjson.dumps({**request_out(request), "task_id": request.task_id}).decode()


def _decode(text: str) -> PublishRequest:
    body = orjson.loads(text)
    return dataclasses.replace(request_in(body, None), task_id=body["task_id"])


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    error = row[4] if len(row) > 4 else None
    return OutboxEntry(row[0], row[1], _decode(row[2]), row[3], error)


def _note_merged(rows: list[tuple[Any, ...]], published: list[Published]) -> None:
    """An entry whose own idempotency key named an older task is that task: say so."""
    for row, answer in zip(rows, published, strict=False):
        if answer.id != row[1]:
            log.info(
                "outbox: task %s was merged into task %s by its idempotency key", row[1], answer.id
            )


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(_SCHEMA)
    except sqlite3.Error as exc:
        raise ConfigError(f"outbox {str(path)!r} cannot be opened: {exc}") from exc
    return conn


def _insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    with _immediate(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO entries (task_id, request, created_at) VALUES (?, ?, ?)", rows
        )


def _count(conn: sqlite3.Connection, table: str) -> int:
    (count,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(count)


def _select(conn: sqlite3.Connection, table: str, limit: int) -> list[tuple[Any, ...]]:
    extra = ", error" if table == "rejected" else ""
    query = f"SELECT seq, task_id, request, created_at{extra} FROM {table} ORDER BY seq LIMIT ?"
    return conn.execute(query, (limit,)).fetchall()


def _claim(conn: sqlite3.Connection, holder: str, now: float) -> bool:
    """Take the lease unless another holder's is still running."""
    with _immediate(conn):
        row = conn.execute("SELECT holder, until FROM lease WHERE name = 'drain'").fetchone()
        if row is not None and row[0] != holder and row[1] > now:
            return False
        conn.execute(
            "INSERT OR REPLACE INTO lease (name, holder, until) VALUES ('drain', ?, ?)",
            (holder, now + LEASE),
        )
        return True


def _take(conn: sqlite3.Connection, holder: str, now: float, limit: int) -> list[tuple[Any, ...]]:
    """Renew the lease and read the next batch; nothing if the lease was lost."""
    with _immediate(conn):
        renewed = conn.execute(
            "UPDATE lease SET until = ? WHERE name = 'drain' AND holder = ?", (now + LEASE, holder)
        ).rowcount
        if not renewed:
            return []
        return _select(conn, "entries", limit)


def _release(conn: sqlite3.Connection, holder: str) -> None:
    with _immediate(conn):
        conn.execute("DELETE FROM lease WHERE name = 'drain' AND holder = ?", (holder,))


def _delete(conn: sqlite3.Connection, seqs: list[int]) -> None:
    with _immediate(conn):
        conn.executemany("DELETE FROM entries WHERE seq = ?", [(seq,) for seq in seqs])


def _reject(conn: sqlite3.Connection, row: tuple[Any, ...], now: float, error: str) -> None:
    with _immediate(conn):
        conn.execute(
            "INSERT OR REPLACE INTO rejected (seq, task_id, request, created_at, rejected_at,"
            " error) VALUES (?, ?, ?, ?, ?, ?)",
            (*row[:4], now, error),
        )
        conn.execute("DELETE FROM entries WHERE seq = ?", (row[0],))


class _immediate:
    """``with _immediate(conn):`` one ``BEGIN IMMEDIATE`` transaction (the write lock
    first, so two processes never both read then write), committed or rolled back."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._conn.execute("COMMIT" if kind is None else "ROLLBACK")
