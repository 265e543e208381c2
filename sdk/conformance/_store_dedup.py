"""TaskStore checks, part 5: the dedup modes of ``create`` (throttle, debounce, unique)."""

from __future__ import annotations

from typing import Any

import pytest

from atp.core.model import Dedup, DedupMode, State, Task
from atp.core.ports import Clock, Created, Outcome, TaskStore
from atp.sdk.conformance._store_support import (
    LEASE,
    OWNER,
    WINDOW,
    get_one,
    make_in_state,
    make_running,
)
from atp.sdk.conformance._support import make_task, unique

__all__ = ["DedupChecks"]

PERIOD = 60.0
"""The debounce delay and throttle period of the suite's tasks, in seconds."""
THROTTLE = Dedup(DedupMode.THROTTLE, PERIOD)
DEBOUNCE = Dedup(DedupMode.DEBOUNCE, PERIOD)
UNIQUE = Dedup(DedupMode.UNIQUE)


def keyed(subject: str, now: float, key: str, dedup: Dedup, **fields: Any) -> Task:
    """A task with ``key`` and ``dedup``; a debounced one runs ``PERIOD`` after ``now``."""
    if dedup.mode is DedupMode.DEBOUNCE:
        fields.setdefault("run_at", now + PERIOD)
    return make_task(subject, now, idempotency_key=key, dedup=dedup, **fields)


async def create_one(store: TaskStore, task: Task, now: float) -> Created:
    [created] = await store.create([task], now=now, idempotency_window=WINDOW)
    return created


async def state_of(store: TaskStore, task_id: str) -> State:
    return (await get_one(store, task_id)).state


class DedupChecks:
    """create with ``Task.dedup``; part of TaskStoreConformance."""

    # -- throttle ----------------------------------------------------------------------------

    async def test_throttle_answers_with_the_first_task_inside_its_period(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = keyed(subject, now, key, THROTTLE, run_at=now + 5)
        assert await create_one(store, first, now) == Created(first.id, True, now + 5)
        again = keyed(subject, now + PERIOD - 1, key, THROTTLE)
        assert await create_one(store, again, now + PERIOD - 1) == Created(first.id, False, now + 5)
        assert await store.get([again.id]) == [None]

    async def test_throttle_uses_its_period_not_the_idempotency_window(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        await create_one(store, keyed(subject, now, key, THROTTLE), now)
        later = now + PERIOD + 1
        second = keyed(subject, later, key, THROTTLE)
        assert PERIOD + 1 < WINDOW
        assert await create_one(store, second, later) == Created(second.id, True, later)
        third = keyed(subject, later + 1, key, THROTTLE)
        assert await create_one(store, third, later + 1) == Created(second.id, False, later)

    # -- debounce ----------------------------------------------------------------------------

    async def test_debounce_replaces_the_pending_task_of_its_key(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = keyed(subject, now, key, DEBOUNCE)
        assert await create_one(store, first, now) == Created(first.id, True, first.run_at)
        second = keyed(subject, now + 5, key, DEBOUNCE)
        created = await create_one(store, second, now + 5)
        assert created == Created(second.id, True, now + 5 + PERIOD, replaced=first.id)
        cancelled = await get_one(store, first.id)
        assert (cancelled.state, cancelled.finished_at) == (State.CANCELLED, now + 5)
        assert await state_of(store, second.id) is State.SCHEDULED
        third = keyed(subject, now + 9, key, DEBOUNCE)
        created = await create_one(store, third, now + 9)
        assert created == Created(third.id, True, now + 9 + PERIOD, replaced=second.id)
        assert [await state_of(store, t.id) for t in (first, second, third)] == [
            State.CANCELLED,
            State.CANCELLED,
            State.SCHEDULED,
        ]

    async def test_debounce_replaces_a_ready_task_not_yet_claimed(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = keyed(subject, now, key, DEBOUNCE, run_at=now)
        await store.create([first], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
        assert await state_of(store, first.id) is State.READY
        second = keyed(subject, now + 1, key, DEBOUNCE)
        created = await create_one(store, second, now + 1)
        assert created.replaced == first.id
        assert await state_of(store, first.id) is State.CANCELLED

    async def test_debounce_leaves_a_running_task_and_still_creates(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        running = await make_running(store, subject, now, idempotency_key=key, dedup=DEBOUNCE)
        second = keyed(subject, now + 1, key, DEBOUNCE)
        created = await create_one(store, second, now + 1)
        assert created == Created(second.id, True, second.run_at)
        assert await get_one(store, running.id) == running

    async def test_debounce_leaves_a_task_that_has_started_an_attempt(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        running = await make_running(store, subject, now, idempotency_key=key, dedup=DEBOUNCE)
        retry = Outcome(running.id, OWNER, State.SCHEDULED, at=now + 1, run_at=now + 30)
        assert await store.finish([retry]) == [True]
        retried = await get_one(store, running.id)
        assert (retried.state, retried.task.attempt) == (State.SCHEDULED, 1)
        second = keyed(subject, now + 2, key, DEBOUNCE)
        assert await create_one(store, second, now + 2) == Created(second.id, True, second.run_at)
        assert await get_one(store, running.id) == retried

    async def test_debounce_after_a_finished_task_replaces_nothing(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = keyed(subject, now, key, DEBOUNCE)
        await create_one(store, first, now)
        await store.cancel([first.id], now=now + 1)
        second = keyed(subject, now + 2, key, DEBOUNCE)
        assert await create_one(store, second, now + 2) == Created(second.id, True, second.run_at)

    async def test_debounce_keys_are_scoped_by_subject(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = keyed(subject, now, key, DEBOUNCE)
        await create_one(store, first, now)
        elsewhere = keyed(f"{unique('store')}.work", now + 1, key, DEBOUNCE)
        created = await create_one(store, elsewhere, now + 1)
        assert created == Created(elsewhere.id, True, elsewhere.run_at)
        assert await state_of(store, first.id) is State.SCHEDULED

    # -- unique ------------------------------------------------------------------------------

    @pytest.mark.parametrize("state", [State.SCHEDULED, State.READY, State.RUNNING])
    async def test_unique_refuses_while_the_key_task_is_active_however_old(
        self, store: TaskStore, clock: Clock, subject: str, state: State
    ) -> None:
        now, key = clock.now(), unique("key")
        active = await make_in_state(store, subject, now, state, idempotency_key=key, dedup=UNIQUE)
        later = now + WINDOW + 10
        again = keyed(subject, later, key, UNIQUE)
        refused = Created(active.id, False, active.task.run_at)
        assert await create_one(store, again, later) == refused
        assert await store.get([again.id]) == [None]
        assert await state_of(store, active.id) is state

    @pytest.mark.parametrize("state", [State.SUCCEEDED, State.CANCELLED, State.DEAD])
    async def test_unique_is_free_again_once_the_key_task_finished(
        self, store: TaskStore, clock: Clock, subject: str, state: State
    ) -> None:
        now, key = clock.now(), unique("key")
        await make_in_state(store, subject, now, state, idempotency_key=key, dedup=UNIQUE)
        again = keyed(subject, now + 1, key, UNIQUE)
        assert await create_one(store, again, now + 1) == Created(again.id, True, again.run_at)
        third = keyed(subject, now + 2, key, UNIQUE)
        assert await create_one(store, third, now + 2) == Created(again.id, False, again.run_at)

    async def test_unique_keys_are_scoped_by_subject(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        await create_one(store, keyed(subject, now, key, UNIQUE), now)
        elsewhere = keyed(f"{unique('store')}.work", now, key, UNIQUE)
        assert await create_one(store, elsewhere, now) == Created(elsewhere.id, True, now)

    # -- batches -----------------------------------------------------------------------------

    async def test_a_batch_is_taken_as_if_published_one_after_another(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        soon, once, rare = unique("key"), unique("key"), unique("key")
        batch = [
            keyed(subject, now, soon, DEBOUNCE),
            keyed(subject, now, once, UNIQUE),
            keyed(subject, now, soon, DEBOUNCE),
            keyed(subject, now, once, UNIQUE),
            keyed(subject, now, rare, THROTTLE),
            keyed(subject, now, rare, THROTTLE),
        ]
        created = await store.create(batch, now=now, idempotency_window=WINDOW)
        debounced, first_unique, debounced_again, _, throttled, _ = batch
        assert created == [
            Created(debounced.id, True, now + PERIOD),
            Created(first_unique.id, True, now),
            Created(debounced_again.id, True, now + PERIOD, replaced=debounced.id),
            Created(first_unique.id, False, now),
            Created(throttled.id, True, now),
            Created(throttled.id, False, now),
        ]
        records = await store.get([task.id for task in batch])
        assert [r.state if r else None for r in records] == [
            State.CANCELLED,
            State.SCHEDULED,
            State.SCHEDULED,
            None,
            State.SCHEDULED,
            None,
        ]
