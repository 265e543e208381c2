"""The BreakerLedger of SqliteStore (ADR 0040), over the ``flow_breakers`` table of schema
version 7.

Every write is one transaction under the file's write lock (``BEGIN IMMEDIATE``), so a
breaker's read-apply-store is atomic against every worker sharing the file. The
arithmetic, the input checks and the rule of rest are ``atp.core.flow.breaker``'s, as
every ledger's are, so all answer alike. Each write first deletes the closed breakers at
rest by its ``now`` (one range of the partial index on ``rest_at``), so the table holds
only breakers that are open or counting.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial

from atp.core.codec import loads
from atp.core.flow import breaker
from atp.core.flow.breaker import (
    Breaker,
    BreakerState,
    Circuit,
    check_keys,
    check_probes,
    check_samples,
    current,
    rest_at,
    state_from_dict,
    state_to_dict,
)
from atp.core.ports import BreakerLedger, Probe, Sample
from atp.plugins.sqlite._db import Database
from atp.plugins.sqlite._rows import chunked, encode, marks, unique

__all__ = ["SqliteBreakers"]


class SqliteBreakers:
    """The BreakerLedger methods, mixed into SqliteStore; each call is one transaction."""

    _db: Database

    async def observe(self, samples: Sequence[Sample], *, now: float) -> list[BreakerState]:
        """Apply the samples in order (``breaker.observe``), in one transaction."""
        check_samples(samples)
        if not samples:
            return []
        return await self._db.write(partial(observe, samples=samples, now=now))

    async def probe(self, probes: Sequence[Probe], *, now: float) -> list[BreakerState]:
        """Apply the requests in order (``breaker.probe``), in one transaction."""
        check_probes(probes)
        if not probes:
            return []
        return await self._db.write(partial(probe, probes=probes, now=now))

    async def breakers(self) -> list[BreakerState]:
        """Every row, by key, in one read: the writes delete those at rest."""
        return await self._db.read(breakers)

    async def reset_breakers(self, keys: Sequence[str], *, now: float) -> list[bool]:
        """Delete the rows in one transaction; per key, whether it was not closed."""
        check_keys(keys)
        if not keys:
            return []
        return await self._db.write(partial(reset_breakers, keys=keys, now=now))


class _Batch:
    """The breakers one call touches: read once, applied in memory, written back once."""

    def __init__(self, conn: sqlite3.Connection, keys: Sequence[str], now: float) -> None:
        self._conn, self._now = conn, now
        conn.execute("DELETE FROM flow_breakers WHERE rest_at <= ?", (now,))
        self._loaded = _load(conn, keys)
        self._states = dict(self._loaded)
        self._windows: dict[str, float] = {}

    def read(self, key: str, policy: Breaker) -> BreakerState:
        return current(self._states.get(key), key, policy, self._now)

    def keep(self, state: BreakerState, policy: Breaker) -> BreakerState:
        self._states[state.key] = state
        self._windows[state.key] = policy.window
        return state

    def save(self) -> None:
        """Write each breaker changed, or delete it if it is at rest already."""
        rows, gone = [], []
        for key, window in self._windows.items():
            state = self._states[key]
            if state == self._loaded.get(key):
                continue  # a probe of a closed breaker, a report to an open one
            rest = rest_at(state, window)
            if rest is not None and rest <= self._now:
                gone.append(key)
            else:
                rows.append((key, encode(state_to_dict(state)), rest))
        self._conn.executemany(
            "INSERT INTO flow_breakers (key, state, rest_at) VALUES (?, ?, ?) ON CONFLICT (key) "
            "DO UPDATE SET state = excluded.state, rest_at = excluded.rest_at",
            rows,
        )
        _delete(self._conn, gone)


def observe(conn: sqlite3.Connection, samples: Sequence[Sample], now: float) -> list[BreakerState]:
    batch = _Batch(conn, [one.key for one in samples], now)
    states = []
    for one in samples:
        state = batch.read(one.key, one.policy)
        state = breaker.observe(state, one.policy, one.ok, one.failed, now, one.by)
        states.append(batch.keep(state, one.policy))
    batch.save()
    return states


def probe(conn: sqlite3.Connection, probes: Sequence[Probe], now: float) -> list[BreakerState]:
    batch = _Batch(conn, [one.key for one in probes], now)
    states = []
    for one in probes:
        state = batch.read(one.key, one.policy)
        state = breaker.probe(state, one.policy, one.task_id, now, one.until, one.by)
        states.append(batch.keep(state, one.policy))
    batch.save()
    return states


def breakers(conn: sqlite3.Connection) -> list[BreakerState]:
    rows = conn.execute("SELECT state FROM flow_breakers ORDER BY key")
    return [state_from_dict(loads(state)) for (state,) in rows]


def reset_breakers(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> list[bool]:
    """Delete each breaker; a key named twice finds it gone the second time."""
    conn.execute("DELETE FROM flow_breakers WHERE rest_at <= ?", (now,))
    states = _load(conn, keys)
    was_open = []
    for key in keys:
        state = states.pop(key, None)
        was_open.append(state is not None and state.circuit is not Circuit.CLOSED)
    _delete(conn, unique(keys))
    return was_open


def _load(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, BreakerState]:
    states: dict[str, BreakerState] = {}
    for chunk in chunked(unique(keys)):
        sql = f"SELECT state FROM flow_breakers WHERE key IN ({marks(len(chunk))})"
        for (state,) in conn.execute(sql, chunk):
            loaded = state_from_dict(loads(state))
            states[loaded.key] = loaded
    return states


def _delete(conn: sqlite3.Connection, keys: Sequence[str]) -> None:
    for chunk in chunked(keys):
        conn.execute(f"DELETE FROM flow_breakers WHERE key IN ({marks(len(chunk))})", chunk)


_: type[BreakerLedger] = SqliteBreakers
