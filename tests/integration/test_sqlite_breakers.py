"""The SQLite breaker ledger across connections: stores opened on one file, as the workers
of one machine open it, share one breaker per subject (ADR 0040), and only one of them
gets the probe. Its table does not grow with the subjects that ever reported: a closed
breaker at rest is deleted by the next write. A version 6 file gains the table in place.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from atp.core.flow.breaker import Breaker, Circuit, breaker_key
from atp.core.ports import Probe, Sample
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._schema import VERSION

T0 = 1_800_000_000.0  # the start of a fixed window of 60 s
POLICY = Breaker(ratio=0.5, window=60.0, min_volume=4, open_for=30.0)
STORES = 4
KEYS = 1000


def breaker_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM flow_breakers").fetchone()[0])


async def test_stores_on_one_file_share_a_breaker_and_grant_one_probe(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atp.db'}"
    stores = [SqliteStore.from_url(url) for _ in range(STORES)]
    key = breaker_key("billing", "orders.charge")
    try:
        for n, store in enumerate(stores):  # each worker reports one failure
            [state] = await store.observe([Sample(key, POLICY, 0, 1, f"w{n}")], now=T0 + 5 + n)
        assert state.circuit is Circuit.OPEN, "4 failures from 4 connections"
        due = state.open_until

        async def ask(n: int) -> bool:
            probe = Probe(key, POLICY, f"t{n}", due + 20, f"w{n}")
            [after] = await stores[n].probe([probe], now=due)
            return after.probe == f"t{n}"

        granted = await asyncio.gather(*(ask(n) for n in range(STORES)))
        reopened = SqliteStore.from_url(url)
        try:
            [listed] = await reopened.breakers()
        finally:
            await reopened.close()
    finally:
        for store in stores:
            await store.close()
    assert granted.count(True) == 1, "one probe, whichever connection asked first"
    assert listed.circuit is Circuit.HALF_OPEN
    assert listed.changed_by == f"w{granted.index(True)}"


async def test_breakers_at_rest_leave_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    keys = [breaker_key("g", f"subject.{n}") for n in range(KEYS)]
    try:
        await store.observe([Sample(key, POLICY, 1, 0) for key in keys], now=T0 + 5)
        await store.observe([Sample(keys[0], POLICY, 0, 4)], now=T0 + 6)  # opens: kept
        counting = breaker_rows(path)
        await store.observe([Sample(keys[1], POLICY, 1, 0)], now=T0 + 2 * POLICY.window)
        rested = breaker_rows(path)
        listed = await store.breakers()
    finally:
        await store.close()
    assert counting == KEYS
    assert rested == 2, "the open one and the one still counting"
    assert [state.key for state in listed] == sorted(keys[:2])


async def test_a_version_6_file_gains_the_breakers_table(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    url = f"sqlite:///{path}"
    store = SqliteStore.from_url(url)
    await store.waiters()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE flow_breakers")
        conn.execute("PRAGMA user_version = 6")
    key = breaker_key("g", "orders.close")
    store = SqliteStore.from_url(url)
    try:
        assert await store.breakers() == []
        [state] = await store.observe([Sample(key, POLICY, 0, 4)], now=T0)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(flow_breakers)")]
    assert state.circuit is Circuit.OPEN
    assert columns == ["key", "state", "rest_at"]
    assert version == VERSION >= 7
