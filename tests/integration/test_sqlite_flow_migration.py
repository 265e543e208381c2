"""A version 4 SQLite file (before flow control) upgrades in place to the flow ledger's
tables of version 5 (ADR 0038), keeping its tasks and keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from atp.core.flow.rules import Gates, Limit, Rules, Slot
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.ports import Admission, Created, Verdict
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._schema import VERSION

NOW = 1_800_000_000.0
FLOW_TABLES = {
    "flow_limits",
    "flow_pauses",
    "flow_meta",
    "flow_slots",
    "flow_slot_limits",
    "flow_buckets",
    "flow_windows",
    "flow_window_times",
    "flow_waiters",
}


def to_version_4(path: Path) -> None:
    """Leave the file as version 4 wrote it: no flow tables."""
    with sqlite3.connect(path) as conn:
        for table in FLOW_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 4")


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}


async def test_a_version_4_file_gets_the_flow_tables_and_keeps_its_tasks(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    url = f"sqlite:///{path}"
    old = SqliteStore.from_url(url)
    task = Task(new_id(NOW), "orders.close", run_at=NOW + 60, created_at=NOW, idempotency_key="o-1")
    await old.create([task], now=NOW, idempotency_window=3600)
    await old.close()
    to_version_4(path)
    assert not tables(path) & FLOW_TABLES

    store = SqliteStore.from_url(url)
    try:
        assert await store.rules_version() == 0, "an upgraded file has no rules yet"
        (record,) = await store.get([task.id])
        again = Task(new_id(NOW), "orders.close", run_at=NOW, created_at=NOW, idempotency_key="o-1")
        duplicate = await store.create([again], now=NOW + 1, idempotency_window=3600)
        limit = Limit("orders.*", concurrency=1)
        await store.put_limits([limit])
        gates = Gates(slots=(Slot("s:orders.*", 1),))
        verdicts = await store.admit(
            [Admission("a", gates, NOW + 30), Admission("b", gates, NOW + 30)], now=NOW
        )
        rules = await store.rules()
    finally:
        await store.close()
    assert record is not None
    assert record.task == task
    assert duplicate == [Created(task.id, False, NOW + 60)], "its keys still hold"
    assert verdicts == [Verdict(True), Verdict(False, wait_for="s:orders.*")]
    assert rules == Rules((limit,), (), 1)
    assert tables(path) >= FLOW_TABLES
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION == 5


async def test_a_new_file_has_the_flow_tables_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    assert await store.waiters() == {}
    await store.close()
    assert tables(path) >= FLOW_TABLES
