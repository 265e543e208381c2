"""The ScheduleStore's statements, each the body of one transaction.

A schedule is one row: its JSON ``body`` plus the columns the scheduler searches
(``paused``, ``next_tick``) and compares on (``revision``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from atp.core.codec import dumps, loads
from atp.core.errors import AlreadyExists, InvalidInput, StateConflict
from atp.core.ports import Fence
from atp.core.schedules import Advance, Schedule, schedule_from_dict, schedule_to_dict
from atp.plugins.sqlite._flow import check_fence
from atp.plugins.sqlite._rows import chunked, marks, unique

_UPSERT = (
    "INSERT INTO schedules (name, paused, next_tick, revision, body) VALUES (?,?,?,?,?) "
    "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
    "next_tick = excluded.next_tick, revision = excluded.revision, body = excluded.body"
)


def put(conn: sqlite3.Connection, schedules: Sequence[Schedule], now: float) -> list[Schedule]:
    """Create or replace every schedule, compare-and-set on revision, or raise."""
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise InvalidInput("a schedule name appears twice in one batch")
    current = _select(conn, names)
    stored = [_stored(s, current.get(s.name), now) for s in schedules]
    conn.executemany(_UPSERT, [_row(s) for s in stored])
    return stored


def get(conn: sqlite3.Connection, names: Sequence[str]) -> list[Schedule | None]:
    """The schedule of each name, or None."""
    found = _select(conn, names)
    return [found.get(name) for name in names]


def list_all(conn: sqlite3.Connection) -> list[Schedule]:
    """Every schedule, by name."""
    return [_decode(row[0]) for row in conn.execute("SELECT body FROM schedules ORDER BY name")]


def remove(conn: sqlite3.Connection, names: Sequence[str]) -> list[bool]:
    """Delete the schedules; per name whether it existed."""
    existing = set(_select(conn, names))
    for chunk in chunked(unique(names)):
        conn.execute(f"DELETE FROM schedules WHERE name IN ({marks(len(chunk))})", chunk)
    return [name in existing for name in names]


def due(conn: sqlite3.Connection, now: float, limit: int) -> list[Schedule]:
    """Active schedules with ``next_tick <= now``, earliest first, from the due index."""
    sql = (
        "SELECT body FROM schedules INDEXED BY schedules_due WHERE paused = 0 "
        "AND next_tick <= ? ORDER BY next_tick, name LIMIT ?"
    )
    return [_decode(row[0]) for row in conn.execute(sql, (now, limit))]


def next_tick(conn: sqlite3.Connection) -> float | None:
    """The earliest next tick of the active schedules."""
    row = conn.execute("SELECT MIN(next_tick) FROM schedules WHERE paused = 0").fetchone()
    return None if row[0] is None else float(row[0])


def advance(
    conn: sqlite3.Connection, advances: Sequence[Advance], now: float, fence: Fence
) -> list[bool]:
    """Apply each advance whose revision is still current, after checking the fence."""
    check_fence(conn, fence)
    current = _select(conn, [a.name for a in advances])
    applied = []
    for item in advances:
        schedule = current.get(item.name)
        if schedule is None or schedule.revision != item.revision:
            applied.append(False)
            continue
        schedule = _advanced(schedule, item, now)
        current[item.name] = schedule
        conn.execute(_UPSERT, _row(schedule))
        applied.append(True)
    return applied


def _select(conn: sqlite3.Connection, names: Sequence[str]) -> dict[str, Schedule]:
    found: dict[str, Schedule] = {}
    for chunk in chunked(unique(names)):
        sql = f"SELECT body FROM schedules WHERE name IN ({marks(len(chunk))})"
        for (body,) in conn.execute(sql, chunk):
            schedule = _decode(body)
            found[schedule.name] = schedule
    return found


def _stored(schedule: Schedule, current: Schedule | None, now: float) -> Schedule:
    if schedule.revision == 0 and current is not None:
        raise AlreadyExists(f"a schedule named {schedule.name!r} exists already")
    if schedule.revision != 0 and (current is None or current.revision != schedule.revision):
        raise StateConflict(
            f"schedule {schedule.name!r} changed or was removed since revision "
            f"{schedule.revision}; nothing was changed"
        )
    created = now if current is None else current.created_at
    return schedule.replace(revision=schedule.revision + 1, created_at=created, updated_at=now)


def _advanced(schedule: Schedule, item: Advance, now: float) -> Schedule:
    schedule = schedule.replace(next_tick=item.next_tick, revision=schedule.revision + 1)
    if item.last_tick is None:
        return schedule
    return schedule.replace(last_tick=item.last_tick, last_task=item.last_task, last_fired_at=now)


def _row(schedule: Schedule) -> tuple[str, int, float, int, str]:
    body = dumps(schedule_to_dict(schedule)).decode()
    return (schedule.name, int(schedule.paused), schedule.next_tick, schedule.revision, body)


def _decode(body: str) -> Schedule:
    return schedule_from_dict(loads(body))
