"""The SQLite store's bounded error history on a row stored before the bound: it reads
whole, and the next append, by finish or recover, cuts it to ``ERROR_HISTORY``.

The bound itself is proven on every store by the conformance suite."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.core.codec import dumps, error_to_dict
from atp.core.ids import new_id
from atp.core.model import ERROR_HISTORY, AttemptError, State, Task
from atp.core.ports import Outcome
from atp.plugins.sqlite import SqliteStore

NOW = 1_750_000_000.0
OLD = [AttemptError(n, NOW - 100 + n, f'old {n} {{"attempt":{n}}}', "error") for n in range(1, 51)]
"""A history of 50 errors, as a row written before the bound could hold."""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore.from_url(f"sqlite:///{tmp_path}/atp.db")
    yield opened
    await opened.close()


async def running_with_old_history(store: SqliteStore, path: Path) -> Task:
    """A task claimed by ``w1`` at NOW, its lease until NOW + 30, holding ``OLD``."""
    task = Task(new_id(NOW), "orders.close", run_at=NOW, created_at=NOW, max_attempts=99)
    await store.create([task], now=NOW, idempotency_window=60, ready_until=NOW + 30)
    await store.claim([task.id], owner="w1", now=NOW, lease_until=NOW + 30)
    old = dumps([error_to_dict(error) for error in OLD]).decode()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE tasks SET errors = ? WHERE id = ?", (old, task.id))
    conn.close()
    [record] = await store.get([task.id])
    assert record is not None
    assert record.errors == tuple(OLD)  # read whole: no trimming on read
    return task


async def test_finish_cuts_an_old_history_to_the_bound(store: SqliteStore, tmp_path: Path) -> None:
    task = await running_with_old_history(store, tmp_path / "atp.db")
    new = AttemptError(1, NOW + 1, "new", "error", "Traceback: new")
    retry = Outcome(task.id, "w1", State.SCHEDULED, at=NOW + 1, error=new, run_at=NOW + 9)
    assert await store.finish([retry]) == [True]
    [record] = await store.get([task.id])
    assert record is not None
    assert record.errors == (OLD[0], *OLD[-(ERROR_HISTORY - 2) :], new)


async def test_recover_cuts_an_old_history_to_the_bound(store: SqliteStore, tmp_path: Path) -> None:
    task = await running_with_old_history(store, tmp_path / "atp.db")
    [record] = await store.recover(now=NOW + 30, limit=10, default_max_attempts=None)
    assert len(record.errors) == ERROR_HISTORY
    assert record.errors[:-1] == (OLD[0], *OLD[-(ERROR_HISTORY - 2) :])
    assert (record.errors[-1].kind, record.errors[-1].attempt) == ("lease", 1)
    assert await store.get([task.id]) == [record]


async def test_an_outcome_without_an_error_leaves_the_history_as_it_is(
    store: SqliteStore, tmp_path: Path
) -> None:
    task = await running_with_old_history(store, tmp_path / "atp.db")
    done = Outcome(task.id, "w1", State.CANCELLED, at=NOW + 1)
    assert await store.finish([done]) == [True]
    [record] = await store.get([task.id])
    assert record is not None
    assert record.errors == tuple(OLD)
