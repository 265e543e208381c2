"""The SQLite store's maintained counters (schema version 8): the per-(subject, state)
counts and the activity buckets kept by triggers, a version 7 file upgraded in place with
exact counts, and the reads that must use an index, never a scan of ``tasks``."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from atp.core.ids import new_id
from atp.core.model import State, Task
from atp.core.ports import ACTIVITY_BUCKET, ActivityCount, Outcome
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._schema import VERSION, ensure_schema

NOW = 1_800_000_000.0  # a whole minute: 30,000,000 buckets since the epoch
VERSION_8 = (
    ("trigger", "tasks_counted_in"),
    ("trigger", "tasks_counted_out"),
    ("trigger", "tasks_counted_moved"),
    ("trigger", "tasks_ended"),
    ("table", "task_counts"),
    ("table", "task_activity"),
)


def make_task(subject: str, run_at: float = NOW) -> Task:
    return Task(id=new_id(NOW), subject=subject, created_at=NOW, run_at=run_at)


def row_counts(path: Path) -> dict[tuple[str, State], int]:
    """The counts as a scan of the rows gives them."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT subject, state, COUNT(*) FROM tasks GROUP BY subject, state")
        return {(subject, State(state)): n for subject, state, n in rows}


def to_version_7(path: Path) -> None:
    """Leave the file as version 7 wrote it: no counters and no triggers."""
    with sqlite3.connect(path) as conn:
        for kind, name in VERSION_8:
            conn.execute(f"DROP {kind.upper()} {name}")
        conn.execute("PRAGMA user_version = 7")


def plan(path: Path, sql: str) -> str:
    with sqlite3.connect(path) as conn:
        return " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))


async def populated(path: Path) -> SqliteStore:
    """A store at ``path`` holding tasks of two subjects in five states."""
    store = SqliteStore.from_url(f"sqlite:///{path}")
    tasks = [make_task(subject) for subject in ("a.x", "a.x", "a.x", "b.y", "b.y")]
    later = [make_task("a.x", run_at=NOW + 600) for _ in range(2)]
    await store.create(tasks, now=NOW, idempotency_window=60, ready_until=NOW + 30)
    await store.create(later, now=NOW, idempotency_window=60)
    ids = [task.id for task in tasks]
    await store.claim(ids[:4], owner="w", now=NOW, lease_until=NOW + 30)
    outcomes = [
        Outcome(ids[0], "w", State.SUCCEEDED, at=NOW + 1),
        Outcome(ids[1], "w", State.DEAD, at=NOW + 1),
        Outcome(ids[3], "w", State.DEAD, at=NOW + 1),
    ]
    assert await store.finish(outcomes) == [True, True, True]
    return store


async def test_a_version_7_file_is_upgraded_with_exact_counts(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = await populated(path)
    await store.close()
    to_version_7(path)
    with sqlite3.connect(path) as conn:  # version 7 code went on writing without triggers
        conn.execute("UPDATE tasks SET state = 'CANCELLED' WHERE state = 'READY'")
        conn.execute("DELETE FROM tasks WHERE state = 'SUCCEEDED'")
    before = row_counts(path)
    assert before == {
        ("a.x", State.DEAD): 1,
        ("a.x", State.RUNNING): 1,
        ("a.x", State.SCHEDULED): 2,
        ("b.y", State.DEAD): 1,
        ("b.y", State.CANCELLED): 1,
    }
    store = SqliteStore.from_url(f"sqlite:///{path}")
    try:
        assert await store.counts() == before
        assert await store.activity(since=0.0) == []  # version 7 kept no history
        assert await store.purge() == 2
        assert await store.counts() == row_counts(path) != before
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION == 8


async def test_the_upgrade_is_idempotent_and_counts_once(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    await (await populated(path)).close()
    to_version_7(path)
    for _ in range(2):
        with sqlite3.connect(path, isolation_level=None) as conn:
            ensure_schema(conn, str(path))
            conn.execute("PRAGMA user_version = 7")  # as if the upgrade ran again
    with sqlite3.connect(path, isolation_level=None) as conn:
        ensure_schema(conn, str(path))
        counted = dict(conn.execute("SELECT subject || ' ' || state, n FROM task_counts"))
    assert counted == {f"{s} {state}": n for (s, state), n in row_counts(path).items()}


async def test_writes_from_any_connection_keep_the_counters(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = await populated(path)
    try:
        with sqlite3.connect(path) as conn:  # another process, or a quarantine
            conn.execute(
                "UPDATE tasks SET state = 'DEAD', updated_at = ? WHERE state = 'RUNNING'",
                (NOW + 125,),
            )
        assert await store.counts() == row_counts(path)
        found = await store.activity(since=NOW + ACTIVITY_BUCKET)
        assert found == [ActivityCount(NOW + 2 * ACTIVITY_BUCKET, "a.x", State.DEAD, 1)]
    finally:
        await store.close()


async def test_prune_deletes_counts_that_reached_zero(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = await populated(path)
    try:
        await store.purge()
        with sqlite3.connect(path) as conn:
            zero = conn.execute("SELECT COUNT(*) FROM task_counts WHERE n = 0").fetchone()[0]
        assert zero == 4  # a.x READY and DEAD, b.y RUNNING and DEAD
        assert await store.counts() == row_counts(path)
        await store.prune(finished_before=NOW, now=NOW, limit=10)
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT subject, state FROM task_counts WHERE n = 0").fetchall()
        assert rows == []
        assert await store.counts() == row_counts(path)
    finally:
        await store.close()


async def test_the_counters_are_read_without_a_scan_of_tasks(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    await (await populated(path)).close()
    due = plan(
        path,
        "SELECT run_at FROM tasks INDEXED BY tasks_due WHERE state = 'SCHEDULED' "
        "ORDER BY run_at LIMIT 1",
    )
    assert "USING INDEX tasks_due" in due
    assert "TEMP B-TREE" not in due
    assert "tasks" not in plan(path, "SELECT subject, state, n FROM task_counts WHERE n > 0")
    buckets = plan(path, "SELECT at FROM task_activity WHERE at >= 0 ORDER BY at, subject, state")
    assert "USING PRIMARY KEY" in buckets
    assert "TEMP B-TREE" not in buckets


@pytest.mark.parametrize("states", [(), ("SUCCEEDED",), ("SUCCEEDED", "DEAD", "READY")])
async def test_counts_come_from_the_counters_not_the_rows(
    tmp_path: Path, states: tuple[str, ...]
) -> None:
    path = tmp_path / "atp.db"
    store = await populated(path)
    try:
        expected = Counter(await store.counts())
        with sqlite3.connect(path) as conn:  # a counter row changed behind the triggers' back
            for state in states:
                conn.execute("UPDATE task_counts SET n = n + 5 WHERE state = ? AND n > 0", (state,))
                for key in [key for key in expected if key[1] == state]:
                    expected[key] += 5
        assert await store.counts() == dict(expected)
    finally:
        await store.close()
