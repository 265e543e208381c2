"""The SQLite store's listing by a wildcard subject pattern: one walk of the (subject, id)
index per matching subject, merged (``_admin._merged``), instead of sorting every task of
every matching subject; one query beyond ``MERGED_SUBJECTS`` subjects. Both give what the
plain filter gives: newest first, paged by cursor, bounded by a time range."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.core.ids import first_id, new_id
from atp.core.model import State, Task
from atp.core.ports import TaskQuery, TaskStore
from atp.core.subjects import compile_pattern
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._admin import MERGED_SUBJECTS
from atp.sdk.conformance._store_support import all_pages
from atp.sdk.conformance._support import make_task

NOW = 1_750_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore.from_url(f"sqlite:///{tmp_path / 'atp.db'}")
    yield opened
    await opened.close()


async def interleaved(store: TaskStore, subjects: list[str], count: int) -> list[Task]:
    """``count`` tasks, one second apart (their ids stamped so), their subjects in turn."""
    tasks = [stamped(make_task(subjects[n % len(subjects)], NOW + n)) for n in range(count)]
    await store.create(tasks, now=NOW + count, idempotency_window=60)
    return tasks


def stamped(task: Task) -> Task:
    """``task`` with an id of its creation time: ``new_id`` never goes back in a process."""
    return task.replace(id=first_id(task.created_at)[:10] + new_id(task.created_at)[10:])


def expected(tasks: list[Task], pattern: str, low: float = 0, high: float = 1e12) -> list[str]:
    wanted = compile_pattern(pattern)
    found = [t for t in tasks if wanted(t.subject) and low <= t.created_at < high]
    return [t.id for t in reversed(found)]


async def listed(store: TaskStore, query: TaskQuery) -> list[str]:
    return [r.id for page in await all_pages(store, query) for r in page.items]


SUBJECTS = ["a.x", "a.y", "a.y.deep", "b.x", "a.z", "ab.x"]


@pytest.mark.parametrize("pattern", ["a.*", "a.>", "*.x", "a.*.deep", "c.*"])
async def test_a_pattern_pages_newest_first_across_its_subjects(
    store: SqliteStore, pattern: str
) -> None:
    tasks = await interleaved(store, SUBJECTS, 40)
    assert await listed(store, TaskQuery(subject=pattern, limit=3)) == expected(tasks, pattern)
    assert await listed(store, TaskQuery(subject=pattern, limit=100)) == expected(tasks, pattern)


async def test_a_pattern_keeps_the_time_range_and_the_cursor(store: SqliteStore) -> None:
    tasks = await interleaved(store, SUBJECTS, 40)
    query = TaskQuery(subject="a.*", limit=2, created_after=NOW + 5, created_before=NOW + 31)
    assert await listed(store, query) == expected(tasks, "a.*", NOW + 5, NOW + 31)
    first = await store.query(dataclasses.replace(query, limit=4))
    assert first.next_cursor is not None
    rest = await store.query(dataclasses.replace(query, cursor=first.next_cursor, limit=100))
    assert [r.id for r in first.items + rest.items] == expected(tasks, "a.*", NOW + 5, NOW + 31)


async def test_a_subject_whose_tasks_are_gone_is_not_walked(store: SqliteStore) -> None:
    tasks = await interleaved(store, ["a.x", "a.y"], 6)
    gone = [t.id for t in tasks if t.subject == "a.y"]
    await store.cancel(gone, now=NOW + 10)
    await store.prune(finished_before=NOW + 11, now=NOW + 11, limit=100)
    assert await listed(store, TaskQuery(subject="a.*")) == expected(tasks, "a.x")


async def test_more_subjects_than_are_merged_are_listed_by_one_query(store: SqliteStore) -> None:
    subjects = [f"many.s{n:03d}" for n in range(MERGED_SUBJECTS + 2)]
    tasks = await interleaved(store, subjects, 3 * len(subjects))
    assert await listed(store, TaskQuery(subject="many.*", limit=50)) == expected(tasks, "many.*")


async def test_a_state_filter_still_applies_with_a_pattern(store: SqliteStore) -> None:
    tasks = await interleaved(store, SUBJECTS, 12)
    await store.cancel([tasks[0].id, tasks[4].id, tasks[3].id], now=NOW + 20)
    query = TaskQuery(subject="a.*", states=frozenset({State.CANCELLED}))
    assert await listed(store, query) == [tasks[4].id, tasks[0].id]
