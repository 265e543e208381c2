"""The SQLite store's workflow tables: a file written before them is migrated on open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from atp.core.workflows.definition import Definition, Step
from atp.core.workflows.runs import Run
from atp.plugins.sqlite._schema import VERSION
from atp.plugins.sqlite.store import SqliteStore

NOW = 1_750_000_000.0


async def test_a_version_2_file_gains_the_workflow_tables_and_keeps_its_tasks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    await store.counts()
    await store.close()
    with sqlite3.connect(path) as conn:  # as atp with schema version 2 left it
        conn.execute("DROP TABLE workflow_runs")
        conn.execute("DROP TABLE workflow_definitions")
        conn.execute("PRAGMA user_version = 2")

    store = SqliteStore.from_url(f"sqlite:///{path}")
    definition = Definition("migrated", 1, (Step("a", subject="x.a"),))
    assert await store.put_definitions([definition], now=NOW) == [True]
    (run,) = await store.create_runs([Run("r1", "migrated", 1, wake_at=NOW)])
    assert await store.due_runs(now=NOW, limit=5) == [run]
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION  # the current version
