"""A version 4 SQLite file (before flow control) upgrades in place to the flow ledger's
tables (ADR 0038), keeping its tasks and keys; a version 5 file (flow control without fair
groups) upgrades to version 6's wake order (ADR 0039), keeping its waiters and their order.
Both land at the current version, and the upgrade is idempotent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from atp.core.flow.rules import Gates, Limit, Rules, Slot
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.ports import Admission, Created, Held, Verdict, Wait
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._schema import VERSION

NOW = 1_800_000_000.0
RESERVE = 30.0  # how long a woken waiter holds its slot before its admit
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
    "flow_lists",
    "flow_groups",
}
VERSION_6_TABLES = {"flow_lists", "flow_groups"}
_VERSION_5_WAITERS = """CREATE TABLE flow_waiters (
    list    TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (list, task_id)
) WITHOUT ROWID"""


def to_version_4(path: Path) -> None:
    """Leave the file as version 4 wrote it: no flow tables."""
    with sqlite3.connect(path) as conn:
        for table in FLOW_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 4")


def to_version_5(path: Path, waiters: list[tuple[str, str]]) -> None:
    """Leave the file as version 5 wrote it: waiters without group or rank, no stride state."""
    with sqlite3.connect(path) as conn:
        for table in (*VERSION_6_TABLES, "flow_waiters"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute(_VERSION_5_WAITERS)
        conn.executemany("INSERT INTO flow_waiters (list, task_id) VALUES (?, ?)", waiters)
        conn.execute("PRAGMA user_version = 5")


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def new_file(url: str) -> None:
    """Write a file of the current version (a store opens its file at the first call)."""
    store = SqliteStore.from_url(url)
    await store.waiters()
    await store.close()


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
    assert columns(path, "flow_waiters") == ["list", "task_id", "grp", "rank"]
    assert user_version(path) == VERSION >= 6


async def test_a_new_file_has_the_flow_tables_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    assert await store.waiters() == {}
    await store.close()
    assert tables(path) >= FLOW_TABLES
    assert columns(path, "flow_waiters") == ["list", "task_id", "grp", "rank"]
    assert user_version(path) == VERSION


async def test_a_version_4_file_parks_in_wake_order(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    url = f"sqlite:///{path}"
    await new_file(url)
    to_version_4(path)
    store = SqliteStore.from_url(url)
    slot = Slot("s:orders.*", 1)
    waits = [Wait(slot.name, "a1", "a", 1, 0.0), Wait(slot.name, "a2", "a", 1, 1.0)]
    try:
        await store.admit([Admission("holder", Gates(slots=(slot,)), NOW + 30)], now=NOW)
        await store.park([*waits, Wait(slot.name, "b1", "b", 1, 5.0)], now=NOW, reserve=RESERVE)
        first = await store.release_slots([Held("holder", (slot.name,))], now=NOW, reserve=RESERVE)
        second = await store.unpark([slot.name], limit=5)
    finally:
        await store.close()
    assert (first, second) == (["a1"], ["b1", "a2"]), "stride over a and b, as on a new file"


async def test_a_version_5_file_keeps_its_waiters_in_their_order(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    url = f"sqlite:///{path}"
    await new_file(url)
    slot = Slot("s:orders.*", 1)
    to_version_5(path, [(slot.name, "t3"), (slot.name, "t1"), (slot.name, "t2")])
    assert "grp" not in columns(path, "flow_waiters")

    store = SqliteStore.from_url(url)
    try:
        before = await store.waiters()
        woken = await store.park(
            [Wait(slot.name, "t0", "late", 1, -100.0)], now=NOW, reserve=RESERVE
        )
        rest = await store.unpark([slot.name], limit=10)
    finally:
        await store.close()
    assert before == {slot.name: 3}
    assert woken == ["t1"], "a slot nobody holds has room 1: the lowest id of group '' first"
    assert rest == ["t0", "t2", "t3"], "then the groups alternate, from their passes"
    assert columns(path, "flow_waiters") == ["list", "task_id", "grp", "rank"]
    assert tables(path) >= VERSION_6_TABLES
    assert user_version(path) == VERSION


async def test_upgrading_again_changes_nothing(tmp_path: Path) -> None:
    """A file already of version 6's shape but marked older (say, a copy restored beside
    an older atp's marker) upgrades without error and keeps its waiters and passes."""
    path = tmp_path / "atp.db"
    url = f"sqlite:///{path}"
    slot = Slot("s:orders.*", 1)
    store = SqliteStore.from_url(url)
    try:
        await store.admit([Admission("holder", Gates(slots=(slot,)), NOW + 30)], now=NOW)
        waits = [
            Wait(slot.name, f"{group}{n}", group, 1, float(n)) for group in "ab" for n in (1, 2)
        ]
        await store.park(waits, now=NOW, reserve=RESERVE)
        [first] = await store.release_slots(
            [Held("holder", (slot.name,))], now=NOW, reserve=RESERVE
        )
    finally:
        await store.close()
    for version in (5, 4):
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {version}")
        await new_file(url)
        assert user_version(path) == VERSION
    store = SqliteStore.from_url(url)
    try:
        rest = await store.unpark([slot.name], limit=10)
    finally:
        await store.close()
    assert first == "a1"
    assert rest == ["b1", "a2", "b2"], "b's pass and a's were kept across the upgrades"
