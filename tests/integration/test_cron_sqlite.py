"""The SQLite store's schedules: a file written by the previous schema version is migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.schedules import Schedule
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._schema import VERSION

NOW = 1_800_000_000.0


async def test_a_version_1_file_is_migrated_keeping_its_tasks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atp.db'}"
    old = SqliteStore.from_url(url)
    task = Task(id=new_id(NOW), subject="orders.close", run_at=NOW, created_at=NOW)
    await old.create([task], now=NOW, idempotency_window=60)
    await old.close()
    with sqlite3.connect(tmp_path / "atp.db") as conn:  # as version 1 left it
        conn.execute("DROP TABLE schedules")
        conn.execute("PRAGMA user_version = 1")

    store = SqliteStore.from_url(url)
    (record,) = await store.get([task.id])
    schedule = Schedule("nightly", "0 2 * * *", "reports.daily", next_tick=NOW + 60)
    (stored,) = await store.put_schedules([schedule], now=NOW)
    assert await store.list_schedules() == [stored]
    await store.close()
    assert record is not None
    assert record.task == task
    with sqlite3.connect(tmp_path / "atp.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION >= 2
