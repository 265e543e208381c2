"""The WorkflowStore half of SqliteStore: statements, each the body of one transaction.

A definition is one row per (name, version) with its JSON ``body``. A run is one row: its
JSON ``body`` plus the columns searched and compared on (``workflow``, ``state``,
``wake_at``, ``revision``). ``SqliteWorkflows`` is mixed into SqliteStore.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial

from atp.core.codec import dumps, loads
from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.workflows.definition import Definition, definition_from_dict, definition_to_dict
from atp.core.workflows.runs import Run, RunPage, RunQuery, run_from_dict, run_to_dict
from atp.plugins.sqlite._db import Database
from atp.plugins.sqlite._rows import chunked, marks, unique

__all__ = ["SqliteWorkflows"]

_RUN_COLUMNS = "(id, workflow, state, wake_at, revision, body)"
_ACTIVE = "state IN ('RUNNING', 'COMPENSATING')"


class SqliteWorkflows:
    """WorkflowStore methods over ``self._db``; each is one transaction."""

    _db: Database

    async def put_definitions(self, definitions: Sequence[Definition], *, now: float) -> list[bool]:
        """Create the new versions in one transaction; a stored one must have the same steps."""
        if not definitions:
            return []
        return await self._db.write(partial(_put_definitions, definitions=definitions, now=now))

    async def get_definitions(
        self, keys: Sequence[tuple[str, int | None]]
    ) -> list[Definition | None]:
        """Read the definitions from one snapshot."""
        return await self._db.read(partial(_get_definitions, keys=keys)) if keys else []

    async def list_definitions(self) -> list[Definition]:
        """Read every definition, by name, then version."""
        return await self._db.read(_list_definitions)

    async def create_runs(self, runs: Sequence[Run]) -> list[Run]:
        """Insert the runs in one transaction, at revision 1."""
        if not runs:
            return []
        return await self._db.write(partial(_create_runs, runs=runs))

    async def get_runs(self, ids: Sequence[str]) -> list[Run | None]:
        """Read the runs from one snapshot."""
        return await self._db.read(partial(_get_runs, ids=ids)) if ids else []

    async def update_runs(self, runs: Sequence[Run]) -> list[bool]:
        """One ``UPDATE ... WHERE revision = ?`` per run, in one transaction."""
        return await self._db.write(partial(_update_runs, runs=runs)) if runs else []

    async def list_runs(self, query: RunQuery) -> RunPage:
        """List by id, descending; ``next_cursor`` is the last id of the page."""
        if query.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {query.limit}")
        return await self._db.read(partial(_list_runs, query=query))

    async def due_runs(self, *, now: float, limit: int) -> list[Run]:
        """Read the wake-up index of the active runs."""
        return await self._db.read(partial(_due_runs, now=now, limit=limit))


def _put_definitions(
    conn: sqlite3.Connection, definitions: Sequence[Definition], now: float
) -> list[bool]:
    keys = [(d.name, d.version) for d in definitions]
    if len(set(keys)) != len(keys):
        raise InvalidInput("a workflow version appears twice in one batch")
    created = []
    for definition in definitions:
        body = dumps(definition_to_dict(definition)).decode()
        row = conn.execute(
            "SELECT body FROM workflow_definitions WHERE name = ? AND version = ?",
            (definition.name, definition.version),
        ).fetchone()
        if row is not None and loads(row[0]) != loads(body):
            raise AlreadyExists(
                f"workflow {definition.name!r} version {definition.version} is registered "
                "already with other steps; a version never changes: register it as a new version"
            )
        if row is None:
            conn.execute(
                "INSERT INTO workflow_definitions (name, version, created_at, body) "
                "VALUES (?,?,?,?)",
                (definition.name, definition.version, now, body),
            )
        created.append(row is None)
    return created


def _get_definitions(
    conn: sqlite3.Connection, keys: Sequence[tuple[str, int | None]]
) -> list[Definition | None]:
    found = []
    for name, version in keys:
        if version is None:
            sql = (
                "SELECT body FROM workflow_definitions WHERE name = ? ORDER BY version DESC LIMIT 1"
            )
            row = conn.execute(sql, (name,)).fetchone()
        else:
            sql = "SELECT body FROM workflow_definitions WHERE name = ? AND version = ?"
            row = conn.execute(sql, (name, version)).fetchone()
        found.append(None if row is None else definition_from_dict(loads(row[0])))
    return found


def _list_definitions(conn: sqlite3.Connection) -> list[Definition]:
    rows = conn.execute("SELECT body FROM workflow_definitions ORDER BY name, version")
    return [definition_from_dict(loads(body)) for (body,) in rows]


def _create_runs(conn: sqlite3.Connection, runs: Sequence[Run]) -> list[Run]:
    ids = [run.id for run in runs]
    if len(set(ids)) != len(ids) or _select_runs(conn, ids):
        raise AlreadyExists("a workflow run with this id exists already")
    created = [run.replace(revision=1) for run in runs]
    conn.executemany(f"INSERT INTO workflow_runs {_RUN_COLUMNS} VALUES (?,?,?,?,?,?)",
                     [_row(run) for run in created])  # fmt: skip
    return created


def _get_runs(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Run | None]:
    found = _select_runs(conn, ids)
    return [found.get(run_id) for run_id in ids]


def _update_runs(conn: sqlite3.Connection, runs: Sequence[Run]) -> list[bool]:
    applied = []
    sql = ("UPDATE workflow_runs SET workflow = ?, state = ?, wake_at = ?, revision = ?, "
           "body = ? WHERE id = ? AND revision = ?")  # fmt: skip
    for run in runs:
        run_id, workflow, state, wake_at, revision, body = _row(
            run.replace(revision=run.revision + 1)
        )
        cursor = conn.execute(sql, (workflow, state, wake_at, revision, body, run_id, run.revision))
        applied.append(cursor.rowcount == 1)
    return applied


def _list_runs(conn: sqlite3.Connection, query: RunQuery) -> RunPage:
    where: list[str] = []
    params: list[object] = []
    if query.workflow is not None:
        where.append("workflow = ?")
        params.append(query.workflow)
    if query.states:
        where.append(f"state IN ({marks(len(query.states))})")
        params.extend(sorted(s.value for s in query.states))
    if query.cursor is not None:
        where.append("id < ?")
        params.append(query.cursor)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT body FROM workflow_runs {clause} ORDER BY id DESC LIMIT ?"
    runs = [_decode(body) for (body,) in conn.execute(sql, (*params, query.limit + 1))]
    more = len(runs) > query.limit
    items = runs[: query.limit]
    return RunPage(items, items[-1].id if more else None)


def _due_runs(conn: sqlite3.Connection, now: float, limit: int) -> list[Run]:
    sql = (f"SELECT body FROM workflow_runs INDEXED BY workflow_runs_wake WHERE {_ACTIVE} "
           "AND wake_at <= ? ORDER BY wake_at, id LIMIT ?")  # fmt: skip
    return [_decode(body) for (body,) in conn.execute(sql, (now, limit))]


def _select_runs(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Run]:
    found: dict[str, Run] = {}
    for chunk in chunked(unique(ids)):
        sql = f"SELECT body FROM workflow_runs WHERE id IN ({marks(len(chunk))})"
        for (body,) in conn.execute(sql, chunk):
            run = _decode(body)
            found[run.id] = run
    return found


def _row(run: Run) -> tuple[str, str, str, float | None, int, str]:
    body = dumps(run_to_dict(run)).decode()
    return (run.id, run.workflow, run.state.value, run.wake_at, run.revision, body)


def _decode(body: str) -> Run:
    return run_from_dict(loads(body))
