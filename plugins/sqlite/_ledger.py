"""The FlowLedger of SqliteStore (ADR 0038, 0039), over the ``flow_*`` tables of schema
version 6.

Every method is one transaction: a write holds the file's write lock from ``BEGIN
IMMEDIATE`` to ``COMMIT``, so an admission's read-check-take is atomic against every
other worker sharing the file. The arithmetic of buckets and windows is
``atp.core.flow.meter``'s; this module only loads and stores its state. A waiter taken
out of a slot's list is written as a holder of that slot in the same transaction (until
``now + reserve``), so a reserved room is a live holder everywhere: in room, admit and
the clean-up of idle slots.

The tables do not grow with the number of keys: a slot's limit row goes once the slot has
neither holders nor waiters (a slot with no limit row and no live holder has room 1),
and ``wake_ready`` (the scheduler's sweep, every second) deletes dead holders and idle
buckets and windows, whose state then answers as a new budget's does. The wake order's
state (a list's time, its groups' passes) lives only while the list has waiters.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Sequence
from functools import partial

from atp.core.codec import loads
from atp.core.flow.breaker import BREAKER_PREFIX
from atp.core.flow.meter import bucket_admit, window_admit
from atp.core.flow.rules import (
    PAUSE_PREFIX,
    Bucket,
    Limit,
    Rules,
    Slot,
    Window,
    limit_from_dict,
    limit_to_dict,
)
from atp.core.ports import Admission, FlowLedger, Held, Verdict, Wait
from atp.core.subjects import validate_pattern
from atp.plugins.sqlite._db import Database
from atp.plugins.sqlite._rows import chunked, encode, marks, unique

__all__ = ["SqliteFlowLedger"]

_HELD = (PAUSE_PREFIX, BREAKER_PREFIX)
"""Prefixes of the waiter lists no room opens: a pause's, an open breaker's."""
_NOT_HELD = " AND ".join(f"substr(list, 1, {len(prefix)}) != ?" for prefix in _HELD)
"""SQL true of a ``flow_waiters.list`` that room may open, given ``_HELD`` as parameters."""

_BUMP = (
    "INSERT INTO flow_meta (id, version) VALUES (0, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = version + 1"
)


class SqliteFlowLedger:
    """The FlowLedger methods, mixed into SqliteStore; each call is one transaction."""

    _db: Database

    async def admit(self, requests: Sequence[Admission], *, now: float) -> list[Verdict]:
        """Admit or refuse each request in order, in one transaction."""
        if not requests:
            return []
        return await self._db.write(partial(admit, requests=requests, now=now))

    async def extend(self, held: Sequence[Held], *, until: float) -> None:
        """Move the ``until`` of the slots held, in one transaction."""
        if held:
            await self._db.write(partial(extend, held=held, until=until))

    async def release_slots(self, held: Sequence[Held], *, now: float, reserve: float) -> list[str]:
        """Give the slots back and take out the waiters they make room for, each holding
        its slot until ``now + reserve``. SqliteStore's own ``release`` (TaskStore's, same
        name) hands a batch of Held here."""
        if not held:
            return []
        return await self._db.write(partial(release_slots, held=held, now=now, until=now + reserve))

    async def park(self, waits: Sequence[Wait], *, now: float, reserve: float) -> list[str]:
        """Add the waiters (or move those there already), then take out the waiters of
        slots with room, in wake order, each holding its slot until ``now + reserve``."""
        if not waits:
            return []
        return await self._db.write(partial(park, waits=waits, now=now, until=now + reserve))

    async def wake_ready(self, *, now: float, limit: int, reserve: float) -> list[str]:
        """Take out the waiters of every slot with room, at most ``limit``, each holding its
        slot until ``now + reserve``."""
        if not await self._db.read(_any_flow_state):  # the common idle case: no write lock
            return []
        return await self._db.write(partial(wake_ready, now=now, limit=limit, until=now + reserve))

    async def unpark(self, names: Sequence[str], *, limit: int) -> list[str]:
        """Take up to ``limit`` waiters out of the named lists, in wake order."""
        if not names or limit <= 0:
            return []
        return await self._db.write(partial(unpark, names=names, limit=limit))

    async def waiters(self) -> dict[str, int]:
        """Count the waiters of each non-empty list in one read."""
        return await self._db.read(waiters)

    async def wake(self, ids: Sequence[str], *, now: float) -> int:
        """Bring SCHEDULED tasks due later forward to ``now``, in one transaction."""
        if not ids:
            return 0
        return await self._db.write(partial(wake, ids=ids, now=now))

    async def put_limits(self, limits: Sequence[Limit]) -> None:
        """Create or replace the limits by name and grow the version."""
        if limits:
            await self._db.write(partial(put_limits, limits=limits))

    async def remove_limits(self, names: Sequence[str]) -> list[bool]:
        """Remove the limits by name and grow the version."""
        if not names:
            return []
        return await self._db.write(partial(remove_limits, names=names))

    async def set_paused(self, patterns: Sequence[str], paused: bool) -> list[bool]:
        """Pause or resume the patterns and grow the version."""
        for pattern in patterns:
            validate_pattern(pattern)
        if not patterns:
            return []
        return await self._db.write(partial(set_paused, patterns=patterns, paused=paused))

    async def rules(self) -> Rules:
        """Every limit and pause with the version, from one snapshot."""
        return await self._db.read(rules)

    async def rules_version(self) -> int:
        """The rules' version in one read."""
        return await self._db.read(rules_version)


# -- admit, extend, release_slots ----------------------------------------------------------


def admit(conn: sqlite3.Connection, requests: Sequence[Admission], now: float) -> list[Verdict]:
    """Each request in turn; one's takings are seen by the next."""
    return [_admit_one(conn, request, now) for request in requests]


def _admit_one(conn: sqlite3.Connection, request: Admission, now: float) -> Verdict:
    gates = request.gates
    for slot in gates.slots:
        _remember_limit(conn, slot)
    for slot in gates.slots:
        if _holders(conn, slot.name, now, besides=request.task_id) >= slot.limit:
            return Verdict(False, wait_for=slot.name)
    retry_at = _meter(conn, gates.buckets, gates.windows, now)
    if retry_at is not None:
        return Verdict(False, retry_at=retry_at)
    conn.executemany(
        "INSERT INTO flow_slots (slot, task_id, until) VALUES (?, ?, ?) "
        "ON CONFLICT (slot, task_id) DO UPDATE SET until = MAX(until, excluded.until)",
        [(slot.name, request.task_id, request.lease_until) for slot in gates.slots],
    )
    return Verdict(True)


def _remember_limit(conn: sqlite3.Connection, slot: Slot) -> None:
    conn.execute(
        "INSERT INTO flow_slot_limits (slot, lim) VALUES (?, ?) "
        "ON CONFLICT (slot) DO UPDATE SET lim = excluded.lim",
        (slot.name, slot.limit),
    )


def _holders(conn: sqlite3.Connection, slot: str, now: float, besides: str = "") -> int:
    """The live holders of ``slot`` other than ``besides``; the dead ones are deleted."""
    conn.execute("DELETE FROM flow_slots WHERE slot = ? AND until <= ?", (slot, now))
    sql = "SELECT count(*) FROM flow_slots WHERE slot = ? AND task_id != ?"
    return int(conn.execute(sql, (slot, besides)).fetchone()[0])


def _meter(
    conn: sqlite3.Connection, buckets: Sequence[Bucket], windows: Sequence[Window], now: float
) -> float | None:
    """Take a turn of every bucket and window, or none: the latest ``retry_at`` of those
    that refuse (their queues moved), or None once all were taken."""
    bucket_turns = [(bucket, _bucket_turn(conn, bucket, now)) for bucket in buckets]
    window_turns = [(window, _window_turn(conn, window, now)) for window in windows]
    refusals = [turn for _, turn in bucket_turns + window_turns if not turn[0]]
    if refusals:
        for bucket, (allowed, _, queue, _) in bucket_turns:
            if not allowed:
                _store_bucket_queue(conn, bucket.name, queue)
        for window, (allowed, _, queue, _) in window_turns:
            if not allowed:
                _store_window_queue(conn, window, queue)
        return max(turn[3] for turn in refusals)
    for bucket, (_, tat, queue, _) in bucket_turns:
        conn.execute(
            "INSERT INTO flow_buckets (name, tat, queue) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET tat = excluded.tat, queue = excluded.queue",
            (bucket.name, tat, queue),
        )
    for window, (_, _, queue, _) in window_turns:
        _store_window_queue(conn, window, queue)
    conn.executemany(
        "INSERT INTO flow_window_times (name, t) VALUES (?, ?)",
        [(window.name, now) for window in windows],
    )
    return None


def _bucket_turn(
    conn: sqlite3.Connection, bucket: Bucket, now: float
) -> tuple[bool, float, float, float]:
    row = conn.execute(
        "SELECT tat, queue FROM flow_buckets WHERE name = ?", (bucket.name,)
    ).fetchone()
    tat, queue = row if row is not None else (0.0, 0.0)
    return bucket_admit(tat, queue, now, bucket.rate, bucket.burst)


def _window_turn(
    conn: sqlite3.Connection, window: Window, now: float
) -> tuple[bool, list[float], float, float]:
    # The times that left the window go now: meter drops them from ``live`` anyway.
    conn.execute(
        "DELETE FROM flow_window_times WHERE name = ? AND t <= ?",
        (window.name, now - window.period),
    )
    times = [
        row[0]
        for row in conn.execute(
            "SELECT t FROM flow_window_times WHERE name = ? ORDER BY t", (window.name,)
        )
    ]
    row = conn.execute("SELECT queue FROM flow_windows WHERE name = ?", (window.name,)).fetchone()
    queue = row[0] if row is not None else 0.0
    return window_admit(times, queue, now, window.count, window.period)


def _store_bucket_queue(conn: sqlite3.Connection, name: str, queue: float) -> None:
    conn.execute(
        "INSERT INTO flow_buckets (name, tat, queue) VALUES (?, 0.0, ?) "
        "ON CONFLICT (name) DO UPDATE SET queue = excluded.queue",
        (name, queue),
    )


def _store_window_queue(conn: sqlite3.Connection, window: Window, queue: float) -> None:
    """The window's queue, and its period: the sweep tells an idle window by it."""
    conn.execute(
        "INSERT INTO flow_windows (name, queue, period) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, period = excluded.period",
        (window.name, queue, window.period),
    )


def extend(conn: sqlite3.Connection, held: Sequence[Held], until: float) -> None:
    """Move the ``until`` of each slot held; a slot not held stays untaken."""
    conn.executemany(
        "UPDATE flow_slots SET until = ? WHERE slot = ? AND task_id = ?",
        [(until, slot, one.task_id) for one in held for slot in one.slots],
    )


def release_slots(
    conn: sqlite3.Connection, held: Sequence[Held], now: float, until: float
) -> list[str]:
    """Delete the holdings, then take out the waiters the freed slots have room for, each
    a holder until ``until``."""
    conn.executemany(
        "DELETE FROM flow_slots WHERE slot = ? AND task_id = ?",
        [(slot, one.task_id) for one in held for slot in one.slots],
    )
    names = unique(slot for one in held for slot in one.slots)
    woken = _fill(conn, names, now, until)
    _forget_idle(conn, names, now)
    return woken


# -- waiter lists --------------------------------------------------------------------------


def park(conn: sqlite3.Connection, waits: Sequence[Wait], now: float, until: float) -> list[str]:
    """Add the waiters (a task is in a list once), then fill their slots (the woken hold
    them until ``until``)."""
    for wait in waits:
        _join(conn, wait)
    names = unique(wait.name for wait in waits)
    woken = _fill(conn, names, now, until)
    _forget_idle(conn, names, now)
    return woken


def _join(conn: sqlite3.Connection, wait: Wait) -> None:
    """Put one task in its list, or give it this group and rank if it is there already. A
    group that starts waiting starts at the list's time; one waiting takes the new weight."""
    row = conn.execute(
        "SELECT grp FROM flow_waiters WHERE list = ? AND task_id = ?", (wait.name, wait.task_id)
    ).fetchone()
    conn.execute(
        "INSERT INTO flow_waiters (list, task_id, grp, rank) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (list, task_id) DO UPDATE SET grp = excluded.grp, rank = excluded.rank",
        (wait.name, wait.task_id, wait.group, wait.rank),
    )
    if row is not None and row[0] != wait.group:
        _leave_if_empty(conn, wait.name, row[0])
    conn.execute(
        "INSERT INTO flow_groups (list, grp, pass, weight) VALUES (?, ?, "
        "coalesce((SELECT time FROM flow_lists WHERE list = ?), 0.0), ?) "
        "ON CONFLICT (list, grp) DO UPDATE SET weight = excluded.weight",
        (wait.name, wait.group, wait.name, wait.weight),
    )


def _leave_if_empty(conn: sqlite3.Connection, name: str, group: str) -> None:
    """Forget the pass of a group of list ``name`` left with no waiters."""
    conn.execute(
        "DELETE FROM flow_groups WHERE list = ? AND grp = ? AND NOT EXISTS "
        "(SELECT 1 FROM flow_waiters WHERE list = ? AND grp = ?)",
        (name, group, name, group),
    )


def wake_ready(conn: sqlite3.Connection, now: float, limit: int, until: float) -> list[str]:
    """Fill every slot with waiters and room, the slot whose next waiter has the lowest
    rank (then id) first, at most ``limit`` in all, the woken holding their slot until
    ``until``; then delete what no longer matters (``_collect``)."""
    ready: list[tuple[_WaitList, str, int]] = []
    for (name,) in conn.execute(
        f"SELECT DISTINCT list FROM flow_waiters WHERE {_NOT_HELD}", _HELD
    ).fetchall():
        room = min(_room(conn, name, now), limit)
        if room > 0:
            ready.append((_WaitList(conn, name, room), name, room))
    ready.sort(key=lambda one: one[0].peek() or _LAST)
    taken: list[str] = []
    for waiting, name, room in ready:
        if len(taken) >= limit:
            break
        woken = waiting.take(min(room, limit - len(taken)))
        waiting.save()
        _reserve(conn, name, woken, until)
        taken.extend(woken)
    _collect(conn, now)
    return taken


def _collect(conn: sqlite3.Connection, now: float) -> None:
    """Delete dead holders, the limits of slots left idle, buckets whose ``tat`` and queue
    have passed, window times older than their period and windows left with none whose
    queue has passed: what is deleted answers as a new budget's state does."""
    conn.execute("DELETE FROM flow_slots WHERE until <= ?", (now,))
    conn.execute(f"DELETE FROM flow_slot_limits WHERE {_IDLE_SLOT}")
    conn.execute("DELETE FROM flow_buckets WHERE tat <= ? AND queue <= ?", (now, now))
    conn.execute(
        "DELETE FROM flow_window_times WHERE rowid IN (SELECT t.rowid FROM flow_windows AS w "
        "JOIN flow_window_times AS t ON t.name = w.name AND t.t <= ? - w.period)",
        (now,),
    )
    conn.execute(
        "DELETE FROM flow_windows WHERE queue <= ? AND NOT EXISTS "
        "(SELECT 1 FROM flow_window_times AS t WHERE t.name = flow_windows.name)",
        (now,),
    )


_IDLE_SLOT = (
    "NOT EXISTS (SELECT 1 FROM flow_slots AS h WHERE h.slot = flow_slot_limits.slot) "
    "AND NOT EXISTS (SELECT 1 FROM flow_waiters AS w WHERE w.list = flow_slot_limits.slot)"
)
"""A slot's limit row with neither holders nor waiters (``flow_slot_limits`` rows)."""


def _forget_idle(conn: sqlite3.Connection, names: Sequence[str], now: float | None) -> None:
    """Delete the limit rows of the named slots left with neither holders nor waiters.
    Given ``now``, dead holders are deleted first and do not count; ``unpark`` has no
    time, so there a dead holder still counts (the sweep takes it later)."""
    for chunk in chunked(names):
        if now is not None:
            conn.execute(
                f"DELETE FROM flow_slots WHERE until <= ? AND slot IN ({marks(len(chunk))})",
                (now, *chunk),
            )
        conn.execute(
            f"DELETE FROM flow_slot_limits WHERE slot IN ({marks(len(chunk))}) AND {_IDLE_SLOT}",
            chunk,
        )


def _fill(conn: sqlite3.Connection, names: Sequence[str], now: float, until: float) -> list[str]:
    """For each of ``names`` that is a slot with room, take out that many of its waiters,
    each a holder of the slot until ``until``; a pause's or a breaker's list is skipped."""
    taken: list[str] = []
    for name in names:
        if name.startswith(_HELD):
            continue
        room = _room(conn, name, now)
        if room > 0:
            waiting = _WaitList(conn, name, room)
            woken = waiting.take(room)
            waiting.save()
            _reserve(conn, name, woken, until)
            taken.extend(woken)
    return taken


def _reserve(conn: sqlite3.Connection, slot: str, ids: Sequence[str], until: float) -> None:
    """Make the woken waiters holders of ``slot`` until ``until``: the room is theirs while
    they travel to a worker, so the next release does not give it again. Their admit finds
    them holding it; a later ``until`` already held stays."""
    conn.executemany(
        "INSERT INTO flow_slots (slot, task_id, until) VALUES (?, ?, ?) "
        "ON CONFLICT (slot, task_id) DO UPDATE SET until = MAX(until, excluded.until)",
        [(slot, task_id, until) for task_id in ids],
    )


def _room(conn: sqlite3.Connection, name: str, now: float) -> int:
    """Slot ``name``'s limit less its live holders; a slot whose limit row is gone counts
    its limit as 1 (every limit is at least 1)."""
    row = conn.execute("SELECT lim FROM flow_slot_limits WHERE slot = ?", (name,)).fetchone()
    return int(1 if row is None else row[0]) - _holders(conn, name, now)


def unpark(conn: sqlite3.Connection, names: Sequence[str], limit: int) -> list[str]:
    """Take up to ``limit`` waiters out of the named lists, each list in wake order, the
    lists merged by their next waiter's rank (then id), so the most overdue comes first."""
    names = unique(names)
    lists = [_WaitList(conn, name, limit) for name in names]
    taken: list[str] = []
    while len(taken) < limit:
        heads = [(head, waiting) for waiting in lists if (head := waiting.peek()) is not None]
        if not heads:
            break
        taken.extend(min(heads, key=lambda one: one[0])[1].take(1))
    for waiting in lists:
        waiting.save()
    _forget_idle(conn, names, None)
    return taken


_LAST = (float("inf"), "")
"""Sorts after every waiter's (rank, task id)."""


class _WaitList:
    """One waiter list's wake order (the FlowLedger docstring), read from its rows: stride
    over the groups, lowest (pass, group) first, and within a group lowest (rank, task
    id) first. ``take`` moves through it in memory; ``save`` writes the waiters taken,
    the groups' passes and the list's time back, forgetting a group (or the whole list)
    left with no waiters. At most ``most`` waiters are taken, so no more are read."""

    def __init__(self, conn: sqlite3.Connection, name: str, most: int) -> None:
        self._conn, self._name, self._most = conn, name, most
        sql = "SELECT grp, pass, weight FROM flow_groups WHERE list = ?"
        rows = conn.execute(sql, (name,)).fetchall()
        self._weights: dict[str, int] = {grp: max(int(weight), 1) for grp, _, weight in rows}
        self._turns = [(float(pass_), grp) for grp, pass_, _ in rows]
        heapq.heapify(self._turns)
        self._passes = {grp: pass_ for pass_, grp in self._turns}
        self._heads: dict[str, list[tuple[float, str]]] = {}
        self._used: dict[str, int] = {}
        self._taken: list[str] = []
        self._time: float | None = None

    def peek(self) -> tuple[float, str] | None:
        """The next waiter's (rank, task id), or None once the list (or ``most``) is spent."""
        while self._turns and len(self._taken) < self._most:
            grp = self._turns[0][1]
            heads = self._group_heads(grp)
            if self._used[grp] < len(heads):
                return heads[self._used[grp]]
            heapq.heappop(self._turns)  # a group row without waiters: save forgets it
        return None

    def take(self, count: int) -> list[str]:
        """Take the next ``count`` waiters (fewer if the list has fewer)."""
        taken: list[str] = []
        while len(taken) < count and (head := self.peek()) is not None:
            pass_, grp = heapq.heappop(self._turns)
            self._used[grp] += 1
            self._time = self._passes[grp] = pass_ + 1.0 / self._weights[grp]
            heapq.heappush(self._turns, (self._time, grp))
            taken.append(head[1])
        self._taken.extend(taken)
        return taken

    def _group_heads(self, grp: str) -> list[tuple[float, str]]:
        if grp not in self._heads:  # at most the rest can come from this group
            sql = (
                "SELECT rank, task_id FROM flow_waiters INDEXED BY flow_waiters_order "
                "WHERE list = ? AND grp = ? ORDER BY rank, task_id LIMIT ?"
            )
            args = (self._name, grp, self._most - len(self._taken))
            self._heads[grp] = [(float(r), t) for r, t in self._conn.execute(sql, args)]
            self._used[grp] = 0
        return self._heads[grp]

    def save(self) -> None:
        """Delete the waiters taken; store or forget the passes and the time they moved."""
        conn, name = self._conn, self._name
        for chunk in chunked(self._taken):
            conn.execute(
                f"DELETE FROM flow_waiters WHERE list = ? AND task_id IN ({marks(len(chunk))})",
                (name, *chunk),
            )
        for grp in self._heads:
            conn.execute(
                "UPDATE flow_groups SET pass = ? WHERE list = ? AND grp = ?",
                (self._passes[grp], name, grp),
            )
            _leave_if_empty(conn, name, grp)
        if conn.execute("SELECT 1 FROM flow_waiters WHERE list = ? LIMIT 1", (name,)).fetchone():
            if self._time is not None:
                conn.execute(
                    "INSERT INTO flow_lists (list, time) VALUES (?, ?) "
                    "ON CONFLICT (list) DO UPDATE SET time = excluded.time",
                    (name, self._time),
                )
            return
        conn.execute("DELETE FROM flow_lists WHERE list = ?", (name,))
        conn.execute("DELETE FROM flow_groups WHERE list = ?", (name,))


def waiters(conn: sqlite3.Connection) -> dict[str, int]:
    """How many wait in each non-empty list."""
    sql = "SELECT list, count(*) FROM flow_waiters GROUP BY list"
    return {name: int(count) for name, count in conn.execute(sql)}


def wake(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> int:
    """Give SCHEDULED tasks due after ``now`` the ``run_at`` ``now`` (the due index moves
    with the column); the number changed."""
    changed = 0
    for chunk in chunked(unique(ids)):
        sql = (
            "UPDATE tasks SET run_at = ?, updated_at = ? WHERE state = 'SCHEDULED' "
            f"AND run_at > ? AND id IN ({marks(len(chunk))})"
        )
        changed += conn.execute(sql, (now, now, now, *chunk)).rowcount
    return changed


# -- rules ---------------------------------------------------------------------------------


def put_limits(conn: sqlite3.Connection, limits: Sequence[Limit]) -> None:
    """Upsert each limit by name (a later one of the same name wins); grow the version."""
    conn.executemany(
        "INSERT INTO flow_limits (name, body) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        [(limit.name, encode(limit_to_dict(limit))) for limit in limits],
    )
    conn.execute(_BUMP)


def remove_limits(conn: sqlite3.Connection, names: Sequence[str]) -> list[bool]:
    """Delete each limit; per name, whether it existed (a repeat finds it gone)."""
    existed = [
        conn.execute("DELETE FROM flow_limits WHERE name = ?", (name,)).rowcount > 0
        for name in names
    ]
    conn.execute(_BUMP)
    return existed


def set_paused(conn: sqlite3.Connection, patterns: Sequence[str], paused: bool) -> list[bool]:
    """Add or delete each pattern; per pattern, whether that changed anything."""
    sql = (
        "INSERT OR IGNORE INTO flow_pauses (pattern) VALUES (?)"
        if paused
        else "DELETE FROM flow_pauses WHERE pattern = ?"
    )
    changed = [conn.execute(sql, (pattern,)).rowcount > 0 for pattern in patterns]
    conn.execute(_BUMP)
    return changed


def rules(conn: sqlite3.Connection) -> Rules:
    """The limits by name, the pauses sorted, and the version."""
    limits = tuple(
        limit_from_dict(loads(body))
        for (body,) in conn.execute("SELECT body FROM flow_limits ORDER BY name")
    )
    pauses = tuple(row[0] for row in conn.execute("SELECT pattern FROM flow_pauses ORDER BY 1"))
    return Rules(limits, pauses, rules_version(conn))


def rules_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT version FROM flow_meta WHERE id = 0").fetchone()
    return int(row[0]) if row is not None else 0


_: type[FlowLedger] = SqliteFlowLedger


_FLOW_STATE = (
    "flow_waiters",
    "flow_slots",
    "flow_slot_limits",
    "flow_buckets",
    "flow_windows",
    "flow_window_times",
)
"""The tables whose rows the sweep may wake or delete; when all are empty it has no work."""


def _any_flow_state(conn: sqlite3.Connection) -> bool:
    """Whether the sweep has anything to look at: one cheap read, so an idle deployment's
    sweep takes no write lock every ``reap_interval``."""
    query = " OR ".join(f"EXISTS (SELECT 1 FROM {table})" for table in _FLOW_STATE)
    return bool(conn.execute(f"SELECT {query}").fetchone()[0])
