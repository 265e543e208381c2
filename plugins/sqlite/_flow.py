"""The TaskStore's transitions of a task's life, each the body of one transaction.

Each function runs on the connection's thread; ``Database`` wraps it in ``BEGIN`` and
``COMMIT``. Writes are batched per statement (``executemany`` or ``IN (...)``).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from atp.core.errors import FencedOut, InvalidInput
from atp.core.model import ERROR_HISTORY, FINAL_STATES, DedupMode, State, Task, TaskRecord
from atp.core.ports import Claim, Created, Fence, LeaseStatus, Outcome
from atp.core.recovery import recovery
from atp.core.subjects import validate_subject
from atp.plugins.sqlite._rows import (
    CHUNK,
    INSERT,
    RECORD_COLUMNS,
    TASK_COLUMNS,
    chunked,
    encode,
    error_json,
    insert_row,
    marks,
    quarantine_views,
    record_from_row,
    select_records,
    tasks_from_rows,
    unique,
)

_OUTCOME_STATES = frozenset({State.SUCCEEDED, State.SCHEDULED, State.DEAD, State.CANCELLED})
_ACTIVE = frozenset({State.SCHEDULED, State.READY, State.RUNNING})
UNIQUE_HOLD = 7 * 86400.0
"""A unique key names its task at least this long after its ``run_at``."""

_UPSERT_KEY = (
    "INSERT INTO idempotency_keys (subject, key, task_id, run_at, created_at, expires_at) "
    "VALUES (?,?,?,?,?,?) ON CONFLICT (subject, key) DO UPDATE SET "
    "task_id = excluded.task_id, run_at = excluded.run_at, "
    "created_at = excluded.created_at, expires_at = excluded.expires_at"
)
# The kept entries are named one by one: removing '$[1]' would never shorten a history
# stored before the bound, and json_group_array has no ORDER BY before SQLite 3.44.
_KEPT = ", ".join(
    [
        "json_extract(errors, '$[0]')",
        *(f"json_extract(errors, '$[#-{back}]')" for back in range(ERROR_HISTORY - 2, 0, -1)),
        "json(:error)",
    ]
)
_APPEND_ERROR = (
    "errors = CASE WHEN :error IS NULL THEN errors "
    f"WHEN json_array_length(errors) < {ERROR_HISTORY} "
    f"THEN json_insert(errors, '$[#]', json(:error)) ELSE json_array({_KEPT}) END"
)
"""``errors`` with ``:error`` appended (unchanged for NULL), keeping the first error and
the newest ``ERROR_HISTORY - 1``; a longer history stored before the bound is cut too."""
_FINISH = (
    "UPDATE tasks SET state = :state, updated_at = :at, result = :result, "
    "finished_at = :finished_at, run_at = COALESCE(:run_at, run_at), "
    "attempt = MAX(attempt - :refund, 0), lease_until = NULL, "
    "lease_owner = CASE WHEN :state = 'SUCCEEDED' THEN lease_owner END, "
    f"{_APPEND_ERROR} WHERE id = :id"
)
_SUCCEED = (
    "UPDATE tasks SET state = 'SUCCEEDED', updated_at = ?, result = ?, finished_at = ?, "
    "lease_until = NULL WHERE id = ?"
)
"""``_FINISH`` for a success: simpler, positional, so the common outcome binds and runs faster.
A SUCCEEDED task keeps its lease owner, the worker that ran it: its state says it holds no
lease."""
_RECOVER = (
    "UPDATE tasks SET state = :state, run_at = COALESCE(:run_at, run_at), "
    "finished_at = :finished_at, updated_at = :now, lease_owner = NULL, lease_until = NULL, "
    f"{_APPEND_ERROR} WHERE id = :id"
)


# -- create ----------------------------------------------------------------------------------


def create(
    conn: sqlite3.Connection,
    tasks: Sequence[Task],
    now: float,
    window: float,
    ready_until: float | None,
) -> list[Created]:
    """Insert the tasks no idempotency key of their subject (as their ``dedup`` reads it)
    or existing id already accounts for; cancel the pending tasks a debounce replaces."""
    for task in tasks:
        validate_subject(task.subject)  # a row that cannot be decoded would poison reads
    keyed = [(t.subject, t.idempotency_key) for t in tasks if t.idempotency_key]
    known = _keys(conn, keyed)
    run_times = _run_times(conn, [task.id for task in tasks])
    created, rows, new_keys, replaced = [], [], [], []
    for task in tasks:
        key = (task.subject, task.idempotency_key) if task.idempotency_key else None
        held = known.get(key) if key else None
        existing = _match(task, held, now, window) if held else None
        if existing is None and task.id in run_times:
            existing = Created(task.id, False, run_times[task.id])
        if existing is not None:
            created.append(existing)
            continue
        replaces = _replaceable(task, held)
        ready = ready_until is not None and task.run_at <= now
        state = State.READY if ready else State.SCHEDULED
        rows.append(insert_row(task, state, ready_until if ready else None, now))
        run_times[task.id] = task.run_at
        if key:
            known[key] = _Key(task.id, task.run_at, now, state, task.attempt)
            new_keys.append((*key, task.id, task.run_at, now, _expiry(task, now, window)))
        if replaces is not None:
            replaced.append(replaces)
        created.append(Created(task.id, True, task.run_at, replaced=replaces))
    conn.executemany(INSERT, rows)
    _cancel_pending(conn, replaced, now)  # after the insert: it may replace one of the batch
    conn.executemany(_UPSERT_KEY, new_keys)
    return created


@dataclass(frozen=True, slots=True)
class _Key:
    """The task an idempotency key names, and that task's state (None: it is gone)."""

    task_id: str
    run_at: float
    created_at: float
    state: State | None
    attempt: int


def _match(task: Task, held: _Key, now: float, window: float) -> Created | None:
    """The answer to ``task`` if the key's task accounts for it (ADR 0038), else None."""
    dedup = task.dedup
    mode = None if dedup is None else dedup.mode
    if mode is DedupMode.DEBOUNCE:
        return None
    if mode is DedupMode.UNIQUE:
        matched = held.state in _ACTIVE
    else:
        period = window if dedup is None or dedup.period is None else dedup.period
        matched = held.created_at > now - period
    return Created(held.task_id, False, held.run_at) if matched else None


def _replaceable(task: Task, held: _Key | None) -> str | None:
    """The id of the pending task a debounce ``task`` replaces, if there is one."""
    if task.dedup is None or task.dedup.mode is not DedupMode.DEBOUNCE or held is None:
        return None
    pending = held.state in (State.SCHEDULED, State.READY) and held.attempt == 0
    return held.task_id if pending else None


def _expiry(task: Task, now: float, window: float) -> float:
    """Until when the key names ``task``."""
    mode = None if task.dedup is None else task.dedup.mode
    if mode is DedupMode.DEBOUNCE:
        return task.run_at + window
    if mode is DedupMode.UNIQUE:
        return task.run_at + max(UNIQUE_HOLD, window)
    if mode is DedupMode.THROTTLE and task.dedup is not None and task.dedup.period is not None:
        return now + task.dedup.period
    return now + window


def _cancel_pending(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> None:
    for chunk in chunked(unique(ids)):
        conn.execute(
            "UPDATE tasks SET state = 'CANCELLED', finished_at = ?, updated_at = ?, "
            f"lease_owner = NULL, lease_until = NULL WHERE id IN ({marks(len(chunk))}) "
            "AND state IN ('SCHEDULED', 'READY') AND attempt = 0",
            (now, now, *chunk),
        )


def _keys(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], _Key]:
    """The stored (subject, key) entries among ``keys``, with their task's state."""
    found: dict[tuple[str, str], _Key] = {}
    for chunk in chunked(unique(keys), CHUNK // 2):  # two parameters a key
        sql = (  # a join, not a row-value IN, so each pair is one primary-key lookup
            "SELECT i.subject, i.key, i.task_id, i.run_at, i.created_at, t.state, t.attempt "
            f"FROM (VALUES {_pairs(len(chunk))}) AS v JOIN idempotency_keys AS i "
            "ON i.subject = v.column1 AND i.key = v.column2 "
            "LEFT JOIN tasks AS t ON t.id = i.task_id"
        )
        params = [part for pair in chunk for part in pair]
        for subject, key, task_id, run_at, created_at, state, attempt in conn.execute(sql, params):
            stored = None if state is None else State(state)
            found[subject, key] = _Key(task_id, run_at, created_at, stored, attempt or 0)
    return found


def _pairs(count: int) -> str:
    return ",".join(["(?,?)"] * count)


def _run_times(conn: sqlite3.Connection, ids: list[str]) -> dict[str, float]:
    """The run_at of each of ``ids`` that is a stored task."""
    found: dict[str, float] = {}
    for chunk in chunked(unique(ids)):
        sql = f"SELECT id, run_at FROM tasks WHERE id IN ({marks(len(chunk))})"
        found.update(conn.execute(sql, chunk).fetchall())
    return found


# -- dispatch: take_due, release, redispatch -------------------------------------------------


def take_due(
    conn: sqlite3.Connection, now: float, limit: int, ready_until: float, fence: Fence | None
) -> list[Task]:
    """Move the oldest due SCHEDULED tasks to READY and return them, oldest first."""
    check_fence(conn, fence)
    sql = (
        "UPDATE tasks SET state = 'READY', lease_until = ?, updated_at = ? WHERE id IN "
        "(SELECT id FROM tasks INDEXED BY tasks_due WHERE state = 'SCHEDULED' AND run_at <= ? "
        f"ORDER BY run_at, priority DESC, id LIMIT ?) RETURNING priority, id, {TASK_COLUMNS}"
    )
    rows = conn.execute(sql, (ready_until, now, now, max(limit, 0))).fetchall()
    return _due_order(conn, rows, now)


def release(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> None:
    """Move those of ``ids`` that are READY back to SCHEDULED."""
    _update_ready(conn, ids, "state = 'SCHEDULED', lease_until = NULL, updated_at = ?", now)


def stamp_ready(conn: sqlite3.Connection, ids: Sequence[str], ready_until: float) -> None:
    """Give those of ``ids`` that are READY ``lease_until=ready_until``."""
    _update_ready(conn, ids, "lease_until = ?", ready_until)


def _update_ready(conn: sqlite3.Connection, ids: Sequence[str], sets: str, value: float) -> None:
    """``UPDATE tasks SET <sets>`` (one ``?``, given ``value``) on those of ``ids`` READY."""
    for chunk in chunked(unique(ids)):
        sql = f"UPDATE tasks SET {sets} WHERE state = 'READY' AND id IN ({marks(len(chunk))})"
        conn.execute(sql, (value, *chunk))


def redispatch(
    conn: sqlite3.Connection,
    now: float,
    limit: int,
    ready_until: float,
    fence: Fence | None,
    everything: bool,
) -> list[Task]:
    """Restamp READY tasks unclaimed past their lease (or all of them) and return them."""
    check_fence(conn, fence)
    sql = (
        "UPDATE tasks SET lease_until = ?, updated_at = ? WHERE id IN "
        "(SELECT id FROM tasks INDEXED BY tasks_lease WHERE state = 'READY' "
        "AND lease_until <= ? ORDER BY lease_until, id LIMIT ?) "
        f"RETURNING priority, id, {TASK_COLUMNS}"
    )
    cutoff = math.inf if everything else now
    rows = conn.execute(sql, (ready_until, now, cutoff, max(limit, 0))).fetchall()
    return _due_order(conn, rows, now)


def _due_order(conn: sqlite3.Connection, rows: list[Any], now: float) -> list[Task]:
    # RETURNING gives no order; put the batch back in due order.
    rows.sort(key=lambda row: (row[3], -row[0], row[1]))
    return tasks_from_rows(conn, [row[1:] for row in rows], now)


def check_fence(conn: sqlite3.Connection, fence: Fence | None) -> None:
    """Refuse ``fence`` if a higher token was seen for its name; else remember it."""
    if fence is None:
        return
    row = conn.execute("SELECT token FROM fences WHERE name = ?", (fence.name,)).fetchone()
    if row is not None and row[0] > fence.token:
        raise FencedOut(
            f"fencing token {fence.token} of {fence.name!r} is older than token {row[0]}: "
            "another leader took over, nothing was changed"
        )
    if row is None or row[0] < fence.token:
        conn.execute(
            "INSERT INTO fences (name, token) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET token = excluded.token",
            (fence.name, fence.token),
        )


# -- running: claim, heartbeat, finish, cancel, recover ---------------------------------------


def claim(
    conn: sqlite3.Connection, ids: Sequence[str], owner: str, now: float, lease_until: float
) -> list[Claim]:
    """Lease the READY (or expired RUNNING) tasks of ``ids`` to ``owner``."""
    taken: dict[str, TaskRecord] = {}
    for chunk in chunked(unique(ids)):
        sql = (
            "UPDATE tasks SET state = 'RUNNING', lease_owner = ?, lease_until = ?, "
            f"attempt = attempt + 1, updated_at = ? WHERE id IN ({marks(len(chunk))}) "
            "AND (state = 'READY' OR (state = 'RUNNING' AND lease_until <= ?)) "
            f"RETURNING {RECORD_COLUMNS}"
        )
        for row in conn.execute(sql, (owner, lease_until, now, *chunk, now)):
            taken[row[0]] = record_from_row(row)
    # the claimed rows came back with the update; only the others are read again
    records = select_records(conn, [task_id for task_id in ids if task_id not in taken])
    records.update(taken)
    for task_id in quarantine_views(conn, taken, now):
        del taken[task_id]  # undecodable: DEAD now, never run
    claims = []
    for task_id in ids:
        claims.append(Claim(records.get(task_id), taken.pop(task_id, None) is not None))
    return claims  # a repeated id was claimed once, by its first occurrence


def heartbeat(
    conn: sqlite3.Connection, ids: Sequence[str], owner: str, lease_until: float
) -> list[LeaseStatus]:
    """Extend ``owner``'s leases on RUNNING tasks; report each lease's status."""
    held: dict[str, LeaseStatus] = {}
    for chunk in chunked(unique(ids)):
        sql = (
            f"UPDATE tasks SET lease_until = ? WHERE id IN ({marks(len(chunk))}) "
            "AND state = 'RUNNING' AND lease_owner = ? RETURNING id, cancel_requested"
        )
        for task_id, cancel in conn.execute(sql, (lease_until, *chunk, owner)):
            held[task_id] = LeaseStatus.CANCEL_REQUESTED if cancel else LeaseStatus.HELD
    return [held.get(task_id, LeaseStatus.LOST) for task_id in ids]


def finish(conn: sqlite3.Connection, outcomes: Sequence[Outcome]) -> list[bool]:
    """Apply each outcome whose task is RUNNING under its owner; report which applied."""
    for outcome in outcomes:
        if outcome.state not in _OUTCOME_STATES:
            raise InvalidInput(
                f"outcome of task {outcome.task_id!r}: state {outcome.state.value} is not "
                "SUCCEEDED, SCHEDULED, DEAD or CANCELLED"
            )
    holders = _holders(conn, [outcome.task_id for outcome in outcomes])
    applied, succeeded, others = [], [], []
    for outcome in outcomes:
        ok = holders.get(outcome.task_id) == outcome.owner
        if ok:
            del holders[outcome.task_id]  # the task left RUNNING: a repeat cannot apply
            if outcome.state is State.SUCCEEDED and outcome.error is None:
                succeeded.append(_success_params(outcome))
            else:
                others.append(_finish_params(outcome))
        applied.append(ok)
    conn.executemany(_SUCCEED, succeeded)
    conn.executemany(_FINISH, others)
    return applied


def _holders(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunked(unique(ids)):
        sql = (
            "SELECT id, lease_owner FROM tasks "
            f"WHERE state = 'RUNNING' AND id IN ({marks(len(chunk))})"
        )
        found.update(conn.execute(sql, chunk).fetchall())
    return found


def _success_params(outcome: Outcome) -> tuple[Any, ...]:
    result = None if outcome.result is None else encode(outcome.result)
    return (outcome.at, result, outcome.at, outcome.task_id)


def _finish_params(outcome: Outcome) -> dict[str, Any]:
    retry = outcome.state is State.SCHEDULED
    return {
        "id": outcome.task_id,
        "state": outcome.state.value,
        "at": outcome.at,
        "result": None if outcome.result is None else encode(outcome.result),
        "finished_at": outcome.at if outcome.state in FINAL_STATES else None,
        "run_at": (outcome.at if outcome.run_at is None else outcome.run_at) if retry else None,
        "refund": 1 if outcome.refund else 0,
        "error": None if outcome.error is None else error_json(outcome.error),
    }


def cancel(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> list[TaskRecord | None]:
    """Cancel waiting tasks, flag running ones, and return every record after."""
    for chunk in chunked(unique(ids)):
        in_chunk = f"id IN ({marks(len(chunk))})"
        conn.execute(
            "UPDATE tasks SET state = 'CANCELLED', finished_at = ?, updated_at = ?, "
            f"lease_owner = NULL, lease_until = NULL WHERE {in_chunk} "
            "AND state IN ('SCHEDULED', 'READY')",
            (now, now, *chunk),
        )
        conn.execute(
            "UPDATE tasks SET cancel_requested = 1, updated_at = ? "
            f"WHERE {in_chunk} AND state = 'RUNNING' AND cancel_requested = 0",
            (now, *chunk),
        )
    records = select_records(conn, ids)
    return [records.get(task_id) for task_id in ids]


def recover(
    conn: sqlite3.Connection, now: float, limit: int, default_max: int | None, fence: Fence | None
) -> list[TaskRecord]:
    """Send RUNNING tasks with an expired lease back to SCHEDULED, or to DEAD, or to
    CANCELLED when a cancel was requested."""
    check_fence(conn, fence)
    rows = conn.execute(
        "SELECT id, attempt, max_attempts, cancel_requested, lease_owner "
        "FROM tasks INDEXED BY tasks_lease "
        "WHERE state = 'RUNNING' AND lease_until <= ? ORDER BY lease_until, id LIMIT ?",
        (now, max(limit, 0)),
    ).fetchall()
    conn.executemany(_RECOVER, [_recover_params(row, now, default_max) for row in rows])
    records = select_records(conn, [row[0] for row in rows])
    quarantine_views(conn, records, now)
    return [records[row[0]] for row in rows]


def _recover_params(row: Sequence[Any], now: float, default_max: int | None) -> dict[str, Any]:
    task_id, attempt, max_attempts, cancel_requested, owner = row
    decided = recovery(
        attempt=attempt,
        max_attempts=max_attempts,
        cancel_requested=bool(cancel_requested),
        now=now,
        default_max_attempts=default_max,
        worker=owner,
    )
    return {
        "id": task_id,
        "state": decided.state.value,
        "run_at": decided.run_at,
        "finished_at": decided.finished_at,
        "now": now,
        "error": error_json(decided.error),
    }
