"""The record primitives of SqliteStore, over the tables of schema versions 2 and 3.

SqliteStore gets every ScheduleStore and WorkflowStore method from ``RecordStore``; this
module maps a ``Record`` onto each table's columns (the JSON ``body`` plus the columns
the scheduler searches and compares on) and back. Each call is one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from atp.core.ports import Fence
from atp.core.records import Decide, Record, RecordStore, Scan, Table, definition_version
from atp.plugins.sqlite._db import Database
from atp.plugins.sqlite._flow import check_fence
from atp.plugins.sqlite._rows import chunked, marks, unique

__all__ = ["SqliteRecords"]

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one Table sits in its SQLite table."""

    table: str
    key: str
    """The SQL expression of the record key."""
    select: str
    """The columns of a Record: key, body, revision, due, group, state."""
    columns: tuple[str, ...]
    conflict: str
    row: Callable[[Record], Row]
    """The values of ``columns`` for a record."""
    due: str | None
    """The due query, with ``now`` and ``limit`` parameters; None: never due."""
    group: str = "''"
    state: str = "''"

    def upsert(self) -> str:
        settable = [c for c in self.columns if c not in self.conflict]
        updates = ", ".join(f"{c} = excluded.{c}" for c in settable)
        columns = ", ".join(self.columns)
        values = marks(len(self.columns))
        return (
            f"INSERT INTO {self.table} ({columns}) VALUES ({values}) "
            f"ON CONFLICT ({self.conflict}) DO UPDATE SET {updates}"
        )


def _schedule_row(record: Record) -> Row:
    # A paused schedule's next_tick column is never read (the due index skips it).
    paused = record.due is None
    next_tick = 0.0 if record.due is None else record.due
    return (record.key, int(paused), next_tick, record.revision, record.body.decode())


def _definition_row(record: Record) -> Row:
    return (record.group, definition_version(record.key), record.created_at, record.body.decode())


def _run_row(record: Record) -> Row:
    body = record.body.decode()
    return (record.key, record.group, record.state, record.due, record.revision, body)


_ACTIVE = "state IN ('RUNNING', 'COMPENSATING')"
_SCHEDULE_SELECT = "name, body, revision, CASE WHEN paused = 0 THEN next_tick END, '', ''"
_RUN_SELECT = f"id, body, revision, CASE WHEN {_ACTIVE} THEN wake_at END, workflow, state"
_LAYOUTS = {
    Table.SCHEDULES: _Layout(
        table="schedules",
        key="name",
        select=_SCHEDULE_SELECT,
        columns=("name", "paused", "next_tick", "revision", "body"),
        conflict="name",
        row=_schedule_row,
        due=(
            f"SELECT {_SCHEDULE_SELECT} FROM schedules INDEXED BY schedules_due "
            "WHERE paused = 0 AND next_tick <= ? ORDER BY next_tick, name LIMIT ?"
        ),
    ),
    Table.DEFINITIONS: _Layout(
        table="workflow_definitions",
        key="name || '@' || version",
        select="name || '@' || version, body, 1, NULL, name, ''",
        columns=("name", "version", "created_at", "body"),
        conflict="name, version",
        row=_definition_row,
        due=None,
        group="name",
    ),
    Table.RUNS: _Layout(
        table="workflow_runs",
        key="id",
        select=_RUN_SELECT,
        columns=("id", "workflow", "state", "wake_at", "revision", "body"),
        conflict="id",
        row=_run_row,
        due=(
            f"SELECT {_RUN_SELECT} FROM workflow_runs INDEXED BY workflow_runs_wake "
            f"WHERE {_ACTIVE} AND wake_at <= ? ORDER BY wake_at, id LIMIT ?"
        ),
        group="workflow",
        state="state",
    ),
}


class SqliteRecords(RecordStore):
    """``RecordStore`` primitives over ``self._db``; each is one transaction."""

    _db: Database

    async def read_records(self, table: Table, keys: Sequence[str]) -> dict[str, Record]:
        """Read the records of ``keys`` from one snapshot."""
        return await self._db.read(partial(_read, layout=_LAYOUTS[table], keys=keys))

    async def scan_records(self, table: Table, scan: Scan) -> list[Record]:
        """One SELECT with the scan as its WHERE, ORDER BY and LIMIT."""
        if scan.states is not None and not scan.states:
            return []
        return await self._db.read(partial(_scan, layout=_LAYOUTS[table], scan=scan))

    async def due_records(self, table: Table, *, now: float, limit: int) -> list[Record]:
        """Read the table's due index."""
        sql = _LAYOUTS[table].due
        if sql is None:
            return []
        return await self._db.read(partial(_select, sql=sql, params=(now, max(limit, 0))))

    async def change_records(
        self, table: Table, keys: Sequence[str], decide: Decide[T], *, fence: Fence | None = None
    ) -> T:
        """Check the fence, read, decide and write in one write transaction."""
        work = partial(_change, layout=_LAYOUTS[table], keys=keys, decide=decide, fence=fence)
        return await self._db.write(work)


def _read(conn: sqlite3.Connection, layout: _Layout, keys: Sequence[str]) -> dict[str, Record]:
    found: dict[str, Record] = {}
    for chunk in chunked(unique(keys)):
        where = f"{layout.key} IN ({marks(len(chunk))})"
        sql = f"SELECT {layout.select} FROM {layout.table} WHERE {where}"
        found.update((r.key, r) for r in _select(conn, sql, chunk))
    return found


def _scan(conn: sqlite3.Connection, layout: _Layout, scan: Scan) -> list[Record]:
    where = ["1"]
    params: list[object] = []
    if scan.group is not None:
        where.append(f"{layout.group} = ?")
        params.append(scan.group)
    if scan.states is not None:
        where.append(f"{layout.state} IN ({marks(len(scan.states))})")
        params.extend(sorted(scan.states))
    if scan.before is not None:
        where.append(f"{layout.key} < ?")
        params.append(scan.before)
    order = "DESC" if scan.newest_first else "ASC"
    sql = f"SELECT {layout.select} FROM {layout.table} WHERE {' AND '.join(where)} "
    sql += f"ORDER BY {layout.key} {order} LIMIT ?"
    return _select(conn, sql, (*params, -1 if scan.limit is None else scan.limit))


def _change(
    conn: sqlite3.Connection,
    layout: _Layout,
    keys: Sequence[str],
    decide: Decide[T],
    fence: Fence | None,
) -> T:
    check_fence(conn, fence)
    change = decide(_read(conn, layout, keys))
    for chunk in chunked(list(change.deletes)):
        sql = f"DELETE FROM {layout.table} WHERE {layout.key} IN ({marks(len(chunk))})"
        conn.execute(sql, chunk)
    conn.executemany(layout.upsert(), [layout.row(record) for record in change.writes])
    return change.result


def _select(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[Record]:
    return [_record(row) for row in conn.execute(sql, params)]


def _record(row: Row) -> Record:
    key, body, revision, due, group, state = row
    return Record(key, body.encode(), revision, due, group, state)
