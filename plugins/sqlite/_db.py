"""One SQLite connection owned by one thread; every call is one whole transaction.

The event loop never blocks on SQLite: a call hops once to the connection's thread, runs
its transaction there from ``BEGIN`` to ``COMMIT``, and hops back with plain Python
values. WAL and a busy timeout let other processes share the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar
from urllib.parse import quote

from atp.core.errors import (
    AtpError,
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    translate_errors,
)
from atp.core.subjects import matches
from atp.plugins.sqlite._schema import ensure_schema
from atp.plugins.sqlite._url import SqliteTarget

__all__ = ["Database"]

log = logging.getLogger("atp.sqlite")
T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]

WAL_RETRY_PAUSE = 0.005

# Errors about the file itself rather than a passing condition: retrying will not help.
_CONFIG_ERRORS = frozenset({"SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"})
_DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


class Database:
    """A lazily opened SQLite connection behind a one-thread executor.

    Calls run in submission order, one at a time; ``write`` holds the file's write lock
    (``BEGIN IMMEDIATE``) for its whole transaction, so a read-then-write inside one call
    is atomic against every other connection, in this process or another.
    """

    def __init__(self, target: SqliteTarget, thread_name: str = "atp-sqlite") -> None:
        self.target = target
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._pid = os.getpid()

    async def write(self, work: Work[T]) -> T:
        """Run ``work`` in one write transaction; on any error nothing of it is kept."""
        return await self._hop(partial(self._transaction, work, "BEGIN IMMEDIATE"))

    async def read(self, work: Work[T]) -> T:
        """Run ``work`` in one read transaction: it sees one consistent snapshot."""
        return await self._hop(partial(self._transaction, work, "BEGIN"))

    async def close(self) -> None:
        """Finish the calls already submitted, then close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return  # the connection and its thread belong to the parent process
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        finally:
            self._executor.shutdown(wait=False)

    async def _hop(self, job: Callable[[], T]) -> T:
        if self._closed:
            raise BackendUnavailable(f"SQLite database {self.target.path!r} is closed")
        if os.getpid() != self._pid:
            # A forked child has no executor thread and must not share the connection.
            raise BackendUnavailable(
                f"SQLite database {self.target.path!r} was opened by process {self._pid}; "
                "build a new store or coordinator in this process"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._translated, job))

    def _translated(self, job: Callable[[], T]) -> T:
        with translate_errors({sqlite3.Error: self._error, OverflowError: _overflow}):
            return job()

    def _transaction(self, work: Work[T], begin: str) -> T:
        conn = self._connect()
        conn.execute(begin)
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        path = self.target.path
        if not self.target.memory and not os.path.isdir(os.path.dirname(path)):
            raise ConfigError(
                f"SQLite database {path!r} (from {self.target.url!r}): directory "
                f"{os.path.dirname(path)!r} does not exist; create it first"
            )
        read_only = self._read_only()
        conn = _connect(path, read_only)
        try:
            self._configure(conn, read_only)
        except BaseException:
            conn.close()
            raise
        return conn

    def _read_only(self) -> bool:
        """Whether to open the file read-only: asked for (``mode=ro``), or a file this
        process may not write, whose reads must still work (``atp task ls``)."""
        if self.target.memory:
            return False
        path = self.target.path
        return self.target.read_only or (os.path.exists(path) and not os.access(path, os.W_OK))

    def _configure(self, conn: sqlite3.Connection, read_only: bool) -> None:
        conn.execute(f"PRAGMA busy_timeout = {self.target.busy_timeout}")
        if not (self.target.memory or read_only):
            mode = self._switch_to_wal(conn)
            if str(mode).lower() != "wal":
                log.warning(
                    "SQLite database %r: WAL unavailable, journal mode %s", self.target.path, mode
                )
        conn.execute(f"PRAGMA synchronous = {self.target.synchronous.upper()}")
        conn.create_function("atp_match", 2, matches, deterministic=True)
        ensure_schema(conn, self.target.path)

    def _switch_to_wal(self, conn: sqlite3.Connection) -> str:
        """Switch a fresh file to WAL. The switch needs the file to itself and SQLite does
        not wait for it (no busy handler), so connections opening one new file together
        retry here, within the busy timeout."""
        deadline = time.monotonic() + self.target.busy_timeout / 1000
        while True:
            try:
                mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
                if mode.lower() != "wal":
                    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                return mode
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "") != "SQLITE_BUSY":
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(WAL_RETRY_PAUSE)  # this connection's own thread, not the loop

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, exc: BaseException) -> AtpError:
        name = getattr(exc, "sqlite_errorname", "")
        path = self.target.path
        if name.startswith(_DAMAGED):
            return ConfigError(
                f"SQLite database {path!r} is not an SQLite database or is corrupt: {exc} "
                "(restore it from a backup, or point the store at another file)"
            )
        if name.startswith("SQLITE_READONLY"):
            return ConfigError(
                f"SQLite database {path!r} is read-only here: {exc}; commands that only "
                "read work, writing needs write access to the file and its directory"
            )
        message = f"SQLite database {path!r}: {exc}"
        if name in _CONFIG_ERRORS:
            return ConfigError(message)
        return BackendUnavailable(message)


def _connect(path: str, read_only: bool) -> sqlite3.Connection:
    """Open ``path``; read-only through a URI, and if even that cannot be (a WAL file whose
    ``-shm`` cannot be made beside it), as an immutable file: read without locks."""
    connect = partial(sqlite3.connect, isolation_level=None, cached_statements=512)
    if not read_only:
        return connect(path)
    uri = f"file:{quote(path)}?mode=ro"
    conn = connect(uri, uri=True)
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # the first read opens the file
    except sqlite3.OperationalError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorname", "") != "SQLITE_CANTOPEN":
            raise
        return connect(uri + "&immutable=1", uri=True)
    except BaseException:
        conn.close()
        raise
    return conn


def _overflow(exc: BaseException) -> AtpError:
    return InvalidInput(f"a number is out of SQLite's 64-bit range: {exc}")
