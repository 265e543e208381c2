"""Between rows of the ``tasks`` table and atp's Task and TaskRecord.

The envelope is kept as JSON; ``run_at`` and ``attempt`` change with the task's life, so
their columns are the truth and overlay the envelope's copy when a row is read.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from atp.core.codec import (
    DECODE_ERRORS,
    dumps,
    error_from_dict,
    error_to_dict,
    is_quarantined,
    loads,
    quarantined,
    task_from_stored_dict,
    task_to_dict,
)
from atp.core.model import JSON, AttemptError, State, Task, TaskRecord

__all__ = [
    "RECORD_COLUMNS",
    "TASK_COLUMNS",
    "chunked",
    "encode",
    "error_json",
    "insert_row",
    "marks",
    "quarantine",
    "quarantine_views",
    "record_from_row",
    "select_records",
    "task_from_row",
    "tasks_from_rows",
    "unique",
]

T = TypeVar("T")

log = logging.getLogger("atp.sqlite")

# Far below SQLite's limit on bound variables (32766), and short enough to keep the
# statement cache hot: every full chunk has the same text.
CHUNK = 500

RECORD_COLUMNS = (
    "id, state, run_at, attempt, lease_owner, lease_until, cancel_requested, "
    "updated_at, finished_at, envelope, result, errors, subject"
)
TASK_COLUMNS = "envelope, run_at, attempt"
_STATES = {state.value: state for state in State}

INSERT = (
    "INSERT INTO tasks (id, subject, state, run_at, priority, attempt, max_attempts, "
    "lease_until, created_at, updated_at, envelope) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)


def encode(value: JSON) -> str:
    """Return ``value`` as JSON text."""
    return dumps(value).decode()


def error_json(error: AttemptError) -> str:
    """Return one entry of a task's error history as JSON text."""
    return encode(error_to_dict(error))


def insert_row(task: Task, state: State, lease_until: float | None, now: float) -> tuple[Any, ...]:
    """Return the parameters of ``INSERT`` for a new task."""
    return (
        task.id,
        task.subject,
        state.value,
        task.run_at,
        task.priority,
        task.attempt,
        task.max_attempts,
        lease_until,
        task.created_at,
        now,
        encode(task_to_dict(task)),
    )


def task_from_row(envelope: str, run_at: float, attempt: int) -> Task:
    """Return the Task of a row from its ``TASK_COLUMNS``."""
    data = loads(envelope)
    data["run_at"] = run_at
    data["attempt"] = attempt
    return task_from_stored_dict(data)  # checked by create on the way in


def record_from_row(row: Sequence[Any]) -> TaskRecord:
    """Return the TaskRecord of a row from its ``RECORD_COLUMNS``; for a row that cannot
    be decoded, the DEAD stand-in ``quarantined`` makes (the row itself is not changed)."""
    try:
        return _record(row)
    except DECODE_ERRORS as exc:
        at = row[7] if isinstance(row[7], int | float) else 0.0
        return quarantined(row[0], row[12], exc, at=at)


def _record(row: Sequence[Any]) -> TaskRecord:
    (
        _,
        state,
        run_at,
        attempt,
        owner,
        lease_until,
        cancel,
        updated,
        finished,
        envelope,
        result,
        errors,
        _,
    ) = row
    # Positional, and no JSON decoding for the common empty values: a claim decodes one
    # record per task on the hot path.
    return TaskRecord(
        task_from_row(envelope, run_at, attempt),
        _STATES[state],
        updated,
        owner,
        lease_until,
        None if result is None else loads(result),
        () if errors == "[]" else tuple(error_from_dict(error) for error in loads(errors)),
        bool(cancel),
        finished,
    )


def tasks_from_rows(conn: sqlite3.Connection, rows: Iterable[Any], now: float) -> list[Task]:
    """The Tasks of rows of ``id, TASK_COLUMNS``; rows that cannot be decoded are
    quarantined (made DEAD, ADR 0027) and left out, so they stop nothing else."""
    tasks, corrupt = [], []
    for task_id, envelope, run_at, attempt in rows:
        try:
            tasks.append(task_from_row(envelope, run_at, attempt))
        except DECODE_ERRORS as exc:
            corrupt.append(task_id)
            log.error("task %s cannot be decoded, quarantined as DEAD: %r", task_id, exc)
    quarantine(conn, corrupt, now)
    return tasks


def quarantine_views(
    conn: sqlite3.Connection, records: Mapping[str, TaskRecord], now: float
) -> list[str]:
    """Make DEAD the rows whose ``records`` are ``quarantined`` stand-ins; their ids."""
    ids = [task_id for task_id, record in records.items() if is_quarantined(record)]
    for task_id in quarantine(conn, ids, now):
        reason = records[task_id].errors[-1].message
        log.error("task %s quarantined as DEAD: %s", task_id, reason)
    return ids


def quarantine(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> list[str]:
    """Make the rows of ``ids`` DEAD, keeping their data as it is; the ids changed."""
    changed: list[str] = []
    for chunk in chunked(unique(ids)):
        sql = (
            "UPDATE tasks SET state = 'DEAD', finished_at = ?, updated_at = ?, "
            f"lease_owner = NULL, lease_until = NULL WHERE id IN ({marks(len(chunk))}) "
            "AND state != 'DEAD' RETURNING id"
        )
        changed.extend(row[0] for row in conn.execute(sql, (now, now, *chunk)))
    return changed


def select_records(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, TaskRecord]:
    """Return the records of those ``ids`` that exist, by id."""
    found: dict[str, TaskRecord] = {}
    for chunk in chunked(unique(ids)):
        sql = f"SELECT {RECORD_COLUMNS} FROM tasks WHERE id IN ({marks(len(chunk))})"
        for row in conn.execute(sql, chunk):
            found[row[0]] = record_from_row(row)
    return found


def ids_where(conn: sqlite3.Connection, ids: Iterable[str], condition: str = "1") -> set[str]:
    """The ids among ``ids`` whose rows exist and meet the SQL ``condition``."""
    found: set[str] = set()
    for chunk in chunked(unique(ids)):
        sql = f"SELECT id FROM tasks WHERE {condition} AND id IN ({marks(len(chunk))})"
        found.update(row[0] for row in conn.execute(sql, chunk))
    return found


def unique(items: Iterable[T]) -> list[T]:
    """Return ``items`` without repeats, in first-seen order."""
    return list(dict.fromkeys(items))


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Yield slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    """Return ``count`` comma-separated SQL placeholders."""
    return ",".join("?" * count)
