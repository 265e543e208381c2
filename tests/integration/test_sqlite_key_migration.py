"""A version 3 SQLite file upgrades in place to subject-scoped idempotency keys (ADR 0028):
its live keys keep deduplicating on their task's subject, and only there."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.ports import Created
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._schema import VERSION

NOW = 1_750_000_000.0
WINDOW = 3600.0

_VERSION_3_KEYS = """CREATE TABLE idempotency (
    key        TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
)"""


def task(subject: str, key: str | None = None, run_at: float = NOW) -> Task:
    return Task(new_id(NOW), subject, run_at=run_at, created_at=NOW, idempotency_key=key)


def to_version_3(path: Path, orphan_key: str) -> None:
    """Rewrite the file's keys as version 3 held them, one global key per name, plus a
    key whose task is gone."""
    with sqlite3.connect(path) as conn:
        conn.execute(_VERSION_3_KEYS)
        conn.execute(
            "INSERT INTO idempotency SELECT key, task_id, created_at, expires_at "
            "FROM idempotency_keys"
        )
        conn.execute(
            "INSERT INTO idempotency VALUES (?, 'gone', ?, ?)", (orphan_key, NOW, NOW + WINDOW)
        )
        conn.execute("DROP TABLE idempotency_keys")
        conn.execute("PRAGMA user_version = 3")


async def test_a_version_3_file_keeps_its_keys_scoped_by_their_tasks_subject(tmp_path):
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    first = task("orders.close", "order-42", run_at=NOW + 60)
    await store.create([first], now=NOW, idempotency_window=WINDOW)
    await store.close()
    to_version_3(path, orphan_key="orphan")

    store = SqliteStore.from_url(f"sqlite:///{path}")
    try:
        same = await store.create(
            [task("orders.close", "order-42")], now=NOW + 1, idempotency_window=WINDOW
        )
        other = task("billing.charge", "order-42")
        elsewhere = await store.create([other], now=NOW + 1, idempotency_window=WINDOW)
        orphan = task("orders.close", "orphan")
        dropped = await store.create([orphan], now=NOW + 1, idempotency_window=WINDOW)
    finally:
        await store.close()
    assert same == [Created(first.id, False, NOW + 60)], "the key still holds on its subject"
    assert elsewhere == [Created(other.id, True, NOW)], "and only there"
    assert dropped == [Created(orphan.id, True, NOW)], "a key whose task is gone has no subject"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "idempotency" not in tables
