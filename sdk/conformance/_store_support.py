"""Builders the TaskStore checks share: tasks brought to a given state, paging, counting."""

from __future__ import annotations

import dataclasses
from typing import Any

from atp.core.model import AttemptError, State, Task, TaskRecord
from atp.core.ports import Clock, Fence, Outcome, Page, TaskQuery, TaskStore
from atp.sdk.conformance._support import make_task

LEASE = 30.0
"""The lease every claim of the suite takes, in seconds."""
WINDOW = 3600.0
"""The idempotency window of every create, in seconds."""
OWNER = "worker-a"
OTHER = "worker-b"


async def get_one(store: TaskStore, task_id: str) -> TaskRecord:
    [record] = await store.get([task_id])
    assert record is not None, f"task {task_id} is unknown to the store"
    return record


async def make_ready(store: TaskStore, subject: str, now: float, **fields: Any) -> Task:
    """A task created READY at ``now``, published until ``now + LEASE``."""
    task = make_task(subject, now, **fields)
    await store.create([task], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
    return task


async def make_running(
    store: TaskStore, subject: str, now: float, owner: str = OWNER, **fields: Any
) -> TaskRecord:
    """A task claimed by ``owner`` at ``now`` with a lease until ``now + LEASE``."""
    task = await make_ready(store, subject, now, **fields)
    [claim] = await store.claim([task.id], owner=owner, now=now, lease_until=now + LEASE)
    assert claim.claimed, f"could not claim {task.id}: {claim}"
    assert claim.record is not None
    return claim.record


async def make_finished(
    store: TaskStore, subject: str, now: float, state: State, **fields: Any
) -> TaskRecord:
    """A task that ran once and ended in ``state`` (SUCCEEDED, DEAD or CANCELLED)."""
    running = await make_running(store, subject, now, **fields)
    error = AttemptError(1, now, "failed for good", "fail") if state is State.DEAD else None
    outcome = Outcome(running.id, OWNER, state, at=now, result="done", error=error)
    assert await store.finish([outcome]) == [True], f"could not finish {running.id}"
    return await get_one(store, running.id)


async def make_in_state(
    store: TaskStore, subject: str, now: float, state: State, **fields: Any
) -> TaskRecord:
    """A task in ``state``, created (and finished, if final) at ``now``."""
    if state is State.RUNNING:
        return await make_running(store, subject, now, **fields)
    if state in (State.SUCCEEDED, State.DEAD):
        return await make_finished(store, subject, now, state, **fields)
    task = make_task(subject, now, **fields)
    ready_until = now + LEASE if state is State.READY else None
    await store.create([task], now=now, idempotency_window=WINDOW, ready_until=ready_until)
    if state is State.CANCELLED:
        await store.cancel([task.id], now=now)
    record = await get_one(store, task.id)
    assert record.state is state, f"could not bring {task.id} to {state}"
    return record


async def make_fencing_target(store: TaskStore, subject: str, now: float, write: str) -> TaskRecord:
    """A task that ``write`` would change at ``now + LEASE``."""
    if write == "take_due":
        return await make_in_state(store, subject, now + 1, State.SCHEDULED)
    if write == "recover":
        return await make_running(store, subject, now)
    return await make_in_state(store, subject, now, State.READY)


async def fenced_write(store: TaskStore, write: str, now: float, fence: Fence) -> list[Task]:
    if write == "take_due":
        return await store.take_due(now=now, limit=10, ready_until=now + LEASE, fence=fence)
    if write == "recover":
        records = await store.recover(now=now, limit=10, default_max_attempts=9, fence=fence)
        return [record.task for record in records]
    return await store.redispatch(now=now, limit=10, ready_until=now + LEASE, fence=fence)


async def create_one_by_one(store: TaskStore, clock: Clock, subjects: list[str]) -> list[Task]:
    """Create a task per subject, one second apart, so their age order is unambiguous."""
    tasks = []
    for offset, subject in enumerate(subjects):
        now = clock.now() + offset
        task = make_task(subject, now, run_at=now + 3600)
        await store.create([task], now=now, idempotency_window=WINDOW)
        tasks.append(task)
    return tasks


async def all_pages(store: TaskStore, query: TaskQuery) -> list[Page]:
    pages = [await store.query(query)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 100, "query paging does not end"
        next_query = dataclasses.replace(query, cursor=pages[-1].next_cursor)
        pages.append(await store.query(next_query))
    return pages


def own_counts(counts: dict[tuple[str, State], int], prefix: str) -> dict[tuple[str, State], int]:
    return {key: n for key, n in counts.items() if key[0].startswith(prefix + ".")}


def count_of(counts: dict[tuple[str, State], int], subject: str) -> int:
    return sum(n for (name, _), n in counts.items() if name == subject)
