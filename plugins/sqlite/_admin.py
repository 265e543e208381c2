"""The TaskStore's inspection and housekeeping, each the body of one transaction.

Listing, counting, the dead-letter queue (requeue, purge) and pruning of old rows. The
counts and the activity buckets are kept by triggers on ``tasks`` (``_schema``).
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.listing import check_query, id_bounds, key_of
from atp.core.model import State, TaskRecord
from atp.core.ports import ACTIVITY_BUCKET, ACTIVITY_KEPT, ActivityCount, Page, Requeue, TaskQuery
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
    check_query(query)
    if query.states is not None and not query.states:
        return Page([], None)
    subjects = _walked_subjects(conn, query)
    if subjects == []:
        return Page([], None)
    if subjects is None:
        clauses, params = _filters(query)
        where = " AND ".join(clauses) or "1"
        sql = f"SELECT {RECORD_COLUMNS} FROM tasks WHERE {where} ORDER BY id DESC LIMIT ?"
    else:
        sql, params = _merged(query, subjects)
    rows = conn.execute(sql, (*params, query.limit + 1)).fetchall()
    items = [record_from_row(row) for row in rows[: query.limit]]
    return Page(items, items[-1].id if len(rows) > query.limit else None)


MERGED_SUBJECTS = 64
"""Most subjects a wildcard listing walks one at a time (well under SQLite's 500 terms of
a compound SELECT); beyond, one walk of the subject index and a sort."""


def _walked_subjects(conn: sqlite3.Connection, query: TaskQuery) -> list[str] | None:
    """The subjects a wildcard listing with no state or key walks one at a time, from the
    counts table (a few rows, never the tasks); None where one query does better."""
    pattern = query.subject
    if pattern is None or pattern == ">" or query.states is not None or key_of(query):
        return None
    tokens = pattern.split(".")
    if "*" not in tokens and ">" not in tokens:
        return None  # one subject: its stretch of the (subject, id) index is in id order
    glob = ".".join("*" if token in ("*", ">") else token for token in tokens)
    rows = conn.execute(
        "SELECT DISTINCT subject FROM task_counts WHERE subject GLOB ? AND n > 0 LIMIT ?",
        (glob, MERGED_SUBJECTS + 1),
    ).fetchall()
    if len(rows) > MERGED_SUBJECTS:
        return None
    wanted = compile_pattern(pattern)
    return [subject for (subject,) in rows if wanted(subject)]


def _merged(query: TaskQuery, subjects: list[str]) -> tuple[str, list[Any]]:
    """The newest ``limit + 1`` of each subject's own walk down the (subject, id) index,
    merged: a pattern's matches are not in id order in that index, and sorting all of
    them (every task of every matching subject) is what this avoids."""
    clauses, params = _filters(dataclasses.replace(query, subject=None))
    where = " AND ".join(["subject = ?", *clauses])
    walk = (
        f"SELECT * FROM (SELECT {RECORD_COLUMNS} FROM tasks WHERE {where} ORDER BY id DESC LIMIT ?)"
    )
    sql = " UNION ALL ".join([walk] * len(subjects)) + " ORDER BY id DESC LIMIT ?"
    values = [value for subject in subjects for value in (subject, *params, query.limit + 1)]
    return sql, values


def _filters(query: TaskQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    low, high = id_bounds(query)  # the time range and the cursor: a range of the id index
    if low is not None:
        clauses.append("id >= ?")
        params.append(low)
    if high is not None:
        clauses.append("id < ?")
        params.append(high)
    key = key_of(query)
    if key is not None:
        clauses.append("id = (SELECT task_id FROM idempotency_keys WHERE subject = ? AND key = ?)")
        params.extend(key)
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
    """Return the number of tasks per (subject, state), as the triggers keep them."""
    rows = conn.execute("SELECT subject, state, n FROM task_counts WHERE n > 0")
    return {(subject, State(state)): count for subject, state, count in rows}


def activity(conn: sqlite3.Connection, since: float) -> list[ActivityCount]:
    """The activity buckets from ``since``'s bucket on, oldest first."""
    start = math.floor(since / ACTIVITY_BUCKET) * ACTIVITY_BUCKET
    rows = conn.execute(
        "SELECT at, subject, state, n FROM task_activity WHERE at >= ? AND n > 0 "
        "ORDER BY at, subject, state",
        (start,),
    )
    return [ActivityCount(at, subject, State(state), n) for at, subject, state, n in rows]


def oldest_due(conn: sqlite3.Connection) -> float | None:
    """The earliest run_at of a SCHEDULED task: the first entry of the due index."""
    row = conn.execute(
        "SELECT run_at FROM tasks INDEXED BY tasks_due WHERE state = 'SCHEDULED' "
        "ORDER BY run_at LIMIT 1"
    ).fetchone()
    return None if row is None else float(row[0])


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
    forget_counters(conn, now)
    return deleted


def forget_counters(conn: sqlite3.Connection, now: float) -> None:
    """Delete the activity buckets that ended more than ``ACTIVITY_KEPT`` before ``now``,
    and the counts that reached zero."""
    last = now - ACTIVITY_KEPT - ACTIVITY_BUCKET
    conn.execute("DELETE FROM task_activity WHERE at <= ?", (last,))
    conn.execute("DELETE FROM task_counts WHERE n = 0")
