"""The TaskStore's inspection and housekeeping, each the body of one transaction.

Listing, counting, the dead-letter queue (requeue, purge) and pruning of old rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.model import State, TaskRecord
from atp.core.ports import Page, Requeue, TaskQuery
from atp.core.subjects import compile_pattern
from atp.plugins.sqlite._rows import (
    RECORD_COLUMNS,
    chunked,
    encode,
    ids_where,
    marks,
    record_from_row,
    select_records,
    unique,
)

_REQUEUE = (
    "UPDATE tasks SET state = 'SCHEDULED', run_at = :run_at, attempt = 0, result = NULL, "
    "finished_at = NULL, lease_owner = NULL, lease_until = NULL, cancel_requested = 0, "
    "updated_at = :now, envelope = CASE WHEN :replace "
    "THEN json_set(envelope, '$.payload', json(:payload)) ELSE envelope END WHERE id = :id"
)


# -- inspection: get, query, counts ------------------------------------------------------------


def get(conn: sqlite3.Connection, ids: Sequence[str]) -> list[TaskRecord | None]:
    """Return the record of each id, None for an unknown one."""
    records = select_records(conn, ids)
    return [records.get(task_id) for task_id in ids]


def query(conn: sqlite3.Connection, query: TaskQuery) -> Page:
    """Return one page of records matching ``query``, newest (highest id) first."""
    if query.limit < 1:
        raise InvalidInput(f"a listing's limit must be at least 1, got {query.limit}")
    if query.states is not None and not query.states:
        return Page([], None)
    clauses, params = _filters(query)
    where = " AND ".join(clauses) or "1"
    sql = f"SELECT {RECORD_COLUMNS} FROM tasks WHERE {where} ORDER BY id DESC LIMIT ?"
    rows = conn.execute(sql, (*params, query.limit + 1)).fetchall()
    items = [record_from_row(row) for row in rows[: query.limit]]
    return Page(items, items[-1].id if len(rows) > query.limit else None)


def _filters(query: TaskQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.cursor is not None:
        clauses.append("id < ?")
        params.append(query.cursor)
    if query.states is not None:
        clauses.append(f"state IN ({marks(len(query.states))})")
        params.extend(sorted(state.value for state in query.states))
    if query.subject is not None:
        clauses_for, params_for = _subject_filter(query.subject)
        clauses.extend(clauses_for)
        params.extend(params_for)
    return clauses, params


def _subject_filter(pattern: str) -> tuple[list[str], list[Any]]:
    compile_pattern(pattern)  # raises InvalidInput for a malformed pattern
    tokens = pattern.split(".")
    if "*" not in tokens and ">" not in tokens:
        return ["subject = ?"], [pattern]
    # Tokens never contain GLOB metacharacters, so the GLOB is a superset that can use the
    # subject index for its literal prefix; atp_match then decides '*' exactly.
    glob = ".".join("*" if token in ("*", ">") else token for token in tokens)
    clauses, params = ([], []) if glob == "*" else (["subject GLOB ?"], [glob])
    if "*" in tokens:
        clauses.append("atp_match(?, subject)")
        params.append(pattern)
    return clauses, params


def counts(conn: sqlite3.Connection) -> dict[tuple[str, State], int]:
    """Return the number of tasks per (subject, state)."""
    rows = conn.execute("SELECT subject, state, COUNT(*) FROM tasks GROUP BY subject, state")
    return {(subject, State(state)): count for subject, state, count in rows}


def oldest_ready(conn: sqlite3.Connection, limit: int) -> dict[str, float]:
    """The earliest run_at per subject among the ``limit`` READY tasks published first."""
    rows = conn.execute(
        "SELECT subject, MIN(run_at) FROM (SELECT subject, run_at FROM tasks "
        "INDEXED BY tasks_lease WHERE state = 'READY' AND lease_until IS NOT NULL "
        "ORDER BY lease_until, id LIMIT ?) "
        "GROUP BY subject",
        (max(limit, 0),),
    )
    return {subject: run_at for subject, run_at in rows}


# -- dead letters and housekeeping: requeue, purge, prune ----------------------------------


def requeue(
    conn: sqlite3.Connection, requests: Sequence[Requeue], now: float
) -> list[TaskRecord | None]:
    """Give DEAD tasks a new life as SCHEDULED; return every record after."""
    dead = ids_where(conn, [request.task_id for request in requests], "state = 'DEAD'")
    params = []
    for request in requests:
        if request.task_id in dead:
            dead.discard(request.task_id)
            params.append(_requeue_params(request, now))
    conn.executemany(_REQUEUE, params)
    records = select_records(conn, [request.task_id for request in requests])
    return [records.get(request.task_id) for request in requests]


def _requeue_params(request: Requeue, now: float) -> dict[str, Any]:
    return {
        "id": request.task_id,
        "run_at": request.run_at,
        "now": now,
        "replace": 1 if request.replace_payload else 0,
        "payload": encode(request.payload) if request.replace_payload else None,
    }


def purge(conn: sqlite3.Connection, ids: Sequence[str] | None) -> int:
    """Delete DEAD tasks, the given ones or all; return how many went."""
    if ids is None:
        return conn.execute("DELETE FROM tasks WHERE state = 'DEAD'").rowcount
    deleted = 0
    for chunk in chunked(unique(ids)):
        sql = f"DELETE FROM tasks WHERE state = 'DEAD' AND id IN ({marks(len(chunk))})"
        deleted += conn.execute(sql, chunk).rowcount
    return deleted


def prune(conn: sqlite3.Connection, finished_before: float, now: float, limit: int) -> int:
    """Delete old finished tasks and closed idempotency keys, up to ``limit`` of each."""
    deleted = conn.execute(
        "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks INDEXED BY tasks_finished WHERE "
        "state IN ('SUCCEEDED', 'CANCELLED') AND finished_at < ? LIMIT ?)",
        (finished_before, max(limit, 0)),
    ).rowcount
    conn.execute(
        "DELETE FROM idempotency_keys WHERE rowid IN "
        "(SELECT rowid FROM idempotency_keys WHERE expires_at < ? LIMIT ?)",
        (now, max(limit, 0)),
    )
    return deleted
