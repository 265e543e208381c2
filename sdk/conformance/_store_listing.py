"""TaskStore checks, part 3: listing and the dead-letter and retention verbs."""

from __future__ import annotations

import math

import pytest

from atp.core.errors import InvalidInput
from atp.core.ids import first_id, new_id
from atp.core.model import State, Task
from atp.core.ports import Clock, Created, Page, ReadyAges, Requeue, TaskQuery, TaskStore
from atp.sdk.conformance._store_support import (
    OWNER,
    WINDOW,
    all_pages,
    create_one_by_one,
    get_one,
    make_in_state,
    make_ready,
    make_running,
    own_counts,
)
from atp.sdk.conformance._support import make_task, unique

__all__ = ["ListingChecks"]


class ListingChecks:
    """query, counts, requeue, purge and prune; part of TaskStoreConformance."""

    # -- query and counts --------------------------------------------------------------------

    async def test_query_lists_newest_first(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        tasks = await create_one_by_one(store, clock, [subject] * 4)
        page = await store.query(TaskQuery(subject=subject))
        assert [r.id for r in page.items] == [t.id for t in reversed(tasks)]
        assert page.next_cursor is None
        assert page.items == await store.get([t.id for t in reversed(tasks)])

    async def test_query_filters_by_subject_pattern(self, store: TaskStore, clock: Clock) -> None:
        prefix = unique("query")
        subjects = [f"{prefix}.a", f"{prefix}.b", f"{prefix}.a.x", f"{unique('other')}.a"]
        a, b, ax, _ = await create_one_by_one(store, clock, subjects)
        expected = {
            f"{prefix}.a": [a],
            f"{prefix}.*": [b, a],
            f"{prefix}.>": [ax, b, a],
            f"{prefix}.*.x": [ax],
            f"{prefix}.c": [],
        }
        for pattern, tasks in expected.items():
            page = await store.query(TaskQuery(subject=pattern))
            assert [r.id for r in page.items] == [t.id for t in tasks], pattern

    async def test_query_without_a_subject_lists_every_subject(
        self, store: TaskStore, clock: Clock
    ) -> None:
        tasks = await create_one_by_one(store, clock, [f"{unique('q')}.x" for _ in range(3)])
        page = await store.query(TaskQuery())
        assert [r.id for r in page.items] == [t.id for t in reversed(tasks)]

    async def test_query_filters_by_states(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        scheduled = await make_in_state(store, subject, now, State.SCHEDULED)
        running = await make_in_state(store, subject, now + 1, State.RUNNING)
        dead = await make_in_state(store, subject, now + 2, State.DEAD)
        query = TaskQuery(subject=subject, states=frozenset({State.SCHEDULED, State.DEAD}))
        assert [r.id for r in (await store.query(query)).items] == [dead.id, scheduled.id]
        running_only = TaskQuery(subject=subject, states=frozenset({State.RUNNING}))
        assert (await store.query(running_only)).items == [await get_one(store, running.id)]
        none = TaskQuery(subject=subject, states=frozenset({State.SUCCEEDED}))
        assert await store.query(none) == Page([], None)

    async def test_query_pages_with_a_cursor(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        tasks = await create_one_by_one(store, clock, [subject] * 7)
        pages = await all_pages(store, TaskQuery(subject=subject, limit=3))
        assert [len(page.items) for page in pages] == [3, 3, 1]
        assert [r.id for page in pages for r in page.items] == [t.id for t in reversed(tasks)]

    async def test_query_pages_through_a_state_filter(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        dead = [await make_in_state(store, subject, now + i, State.DEAD) for i in range(5)]
        for i in range(4):
            await make_in_state(store, subject, now + 10 + i, State.SCHEDULED)
        query = TaskQuery(subject=subject, states=frozenset({State.DEAD}), limit=2)
        pages = await all_pages(store, query)
        assert [r.id for page in pages for r in page.items] == [r.id for r in reversed(dead)]

    async def test_query_filters_by_creation_time(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        start = clock.now()
        tasks = await _create_stamped(store, subject, [start + 10 * i for i in range(4)])
        expected = {
            (start + 10, start + 30): [tasks[2], tasks[1]],
            (start + 10, None): [tasks[3], tasks[2], tasks[1]],
            (None, start + 10): [tasks[0]],
            (start + 5, start + 5): [],
            (start + 31, None): [],
        }
        for (after, before), found in expected.items():
            query = TaskQuery(subject=subject, created_after=after, created_before=before)
            page = await store.query(query)
            assert [r.id for r in page.items] == [t.id for t in found], (after, before)

    async def test_query_pages_through_a_time_range_with_subject_and_state(
        self, store: TaskStore, clock: Clock
    ) -> None:
        start, prefix = clock.now(), unique("range")
        times = [start + i for i in range(8)]
        subjects = [f"{prefix}.a" if i % 4 else f"{prefix}.b" for i in range(8)]
        tasks = await _create_stamped(store, subjects, times)
        await store.cancel([tasks[5].id], now=start + 9)
        query = TaskQuery(
            subject=f"{prefix}.a",
            states=frozenset({State.SCHEDULED}),
            limit=2,
            created_after=start + 1,
            created_before=start + 7,
        )
        pages = await all_pages(store, query)
        assert [r.id for page in pages for r in page.items] == [tasks[i].id for i in (6, 3, 2, 1)]
        assert [len(page.items) for page in pages] == [2, 2]

    async def test_query_finds_the_task_holding_an_idempotency_key(
        self, store: TaskStore, clock: Clock
    ) -> None:
        now, prefix, key = clock.now(), unique("keyed"), unique("key")
        one, other = f"{prefix}.one", f"{prefix}.two"
        keyed = _stamped(make_task(one, now, idempotency_key=key, run_at=now + 60))
        same_key = make_task(other, now, idempotency_key=key, run_at=now + 60)
        plain = make_task(one, now, run_at=now + 60)
        await store.create([keyed, same_key, plain], now=now, idempotency_window=WINDOW)
        found = await store.query(TaskQuery(subject=one, idempotency_key=key))
        assert found == Page([await get_one(store, keyed.id)], None)
        missing = {
            "another key": TaskQuery(subject=one, idempotency_key=unique("key")),
            "another state": TaskQuery(one, frozenset({State.DEAD}), idempotency_key=key),
            "after it": TaskQuery(subject=one, idempotency_key=key, created_after=now + 1),
            "past the cursor": TaskQuery(subject=one, cursor=keyed.id, idempotency_key=key),
        }
        for why, query in missing.items():
            assert await store.query(query) == Page([], None), why

    async def test_query_refuses_a_bad_range_or_key_and_changes_nothing(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        task = await make_in_state(store, subject, now, State.SCHEDULED)
        bad = [
            TaskQuery(subject=subject, created_after=now + 2, created_before=now + 1),
            TaskQuery(subject=subject, created_after=math.nan),
            TaskQuery(idempotency_key="k"),
            TaskQuery(subject=f"{subject}.*", idempotency_key="k"),
            TaskQuery(subject=subject, idempotency_key=""),
        ]
        for query in bad:
            with pytest.raises(InvalidInput):
                await store.query(query)
        assert (await store.query(TaskQuery(subject=subject))).items == [task]

    async def test_counts_group_by_subject_and_state_and_leave_out_zeros(
        self, store: TaskStore, clock: Clock
    ) -> None:
        now, prefix = clock.now(), unique("counts")
        one, two = f"{prefix}.one", f"{prefix}.two"
        for state in (State.SCHEDULED, State.SCHEDULED, State.READY, State.RUNNING):
            await make_in_state(store, one, now, state)
        dead = await make_in_state(store, two, now, State.DEAD)
        assert own_counts(await store.counts(), prefix) == {
            (one, State.SCHEDULED): 2,
            (one, State.READY): 1,
            (one, State.RUNNING): 1,
            (two, State.DEAD): 1,
        }
        await store.purge([dead.id])
        assert (two, State.DEAD) not in await store.counts()

    async def test_oldest_ready_gives_each_subjects_earliest_due_ready_task(
        self, store: TaskStore, clock: Clock
    ) -> None:
        ages = _ready_ages(store)
        now, prefix = clock.now(), unique("ages")
        one, two, three = f"{prefix}.one", f"{prefix}.two", f"{prefix}.three"
        await make_ready(store, one, now, run_at=now - 10)
        await make_ready(store, one, now, run_at=now - 30)
        await make_ready(store, two, now, run_at=now - 5)
        await make_running(store, one, now, run_at=now - 100)
        await make_in_state(store, three, now + 1, State.SCHEDULED)
        found = await ages.oldest_ready(limit=100)
        assert {s: at for s, at in found.items() if s.startswith(prefix + ".")} == {
            one: now - 30,
            two: now - 5,
        }

    async def test_oldest_ready_looks_at_the_limit_first_handed_to_the_transport(
        self, store: TaskStore, clock: Clock
    ) -> None:
        ages = _ready_ages(store)
        now, prefix = clock.now(), unique("ages")
        one, two, three = f"{prefix}.one", f"{prefix}.two", f"{prefix}.three"
        for offset, subject, run_at in ((10, one, now), (20, two, now), (30, three, now)):
            task = make_task(subject, now, run_at=run_at)
            await store.create([task], now=now, idempotency_window=WINDOW, ready_until=now + offset)
        late = make_task(one, now, run_at=now - 50)
        await store.create([late], now=now, idempotency_window=WINDOW, ready_until=now + 40)
        assert await ages.oldest_ready(limit=2) == {one: now, two: now}
        assert await ages.oldest_ready(limit=10) == {one: now - 50, two: now, three: now}
        assert await ages.oldest_ready(limit=0) == {}

    # -- requeue, purge, prune ---------------------------------------------------------------

    async def test_requeue_gives_a_dead_task_a_new_life(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        dead = await make_in_state(store, subject, now, State.DEAD, payload={"v": 1})
        [after] = await store.requeue([Requeue(dead.id, run_at=now + 30)], now=now + 5)
        assert after == await get_one(store, dead.id)
        assert after is not None
        assert (after.state, after.task.attempt, after.task.run_at) == (
            State.SCHEDULED,
            0,
            now + 30,
        )
        assert (after.errors, after.task.payload, after.finished_at) == (
            dead.errors,
            {"v": 1},
            None,
        )
        [task] = await store.take_due(now=now + 30, limit=10, ready_until=now + 99)
        [claim] = await store.claim([task.id], owner=OWNER, now=now + 31, lease_until=now + 99)
        assert claim.record is not None
        assert claim.record.task.attempt == 1

    async def test_requeue_replaces_the_payload_only_when_asked(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        kept, replaced, nulled = [
            await make_in_state(store, subject, now, State.DEAD, payload="old") for _ in range(3)
        ]
        requests = [
            Requeue(kept.id, now, payload="ignored"),
            Requeue(replaced.id, now, payload={"new": ["ü"]}, replace_payload=True),
            Requeue(nulled.id, now, payload=None, replace_payload=True),
        ]
        after = await store.requeue(requests, now=now)
        assert [r.task.payload if r else "?" for r in after] == ["old", {"new": ["ü"]}, None]

    @pytest.mark.parametrize(
        "state",
        [State.SCHEDULED, State.READY, State.RUNNING, State.SUCCEEDED, State.CANCELLED],
        ids=str,
    )
    async def test_requeue_leaves_a_task_that_is_not_dead(
        self, store: TaskStore, clock: Clock, subject: str, state: State
    ) -> None:
        now = clock.now()
        record = await make_in_state(store, subject, now, state)
        requests = [Requeue(record.id, now + 1, "x", True), Requeue(new_id(now), now + 1)]
        assert await store.requeue(requests, now=now + 1) == [record, None]
        assert await get_one(store, record.id) == record

    async def test_purge_deletes_only_the_given_dead_tasks(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        dead = [await make_in_state(store, subject, now, State.DEAD) for _ in range(3)]
        alive = await make_in_state(store, subject, now, State.SCHEDULED)
        done = await make_in_state(store, subject, now, State.SUCCEEDED)
        deleted = await store.purge([dead[0].id, dead[1].id, alive.id, done.id, new_id(now)])
        assert deleted == 2
        records = await store.get([r.id for r in (*dead, alive, done)])
        assert [r.id if r else None for r in records] == [None, None, dead[2].id, alive.id, done.id]

    async def test_purge_of_an_empty_list_deletes_nothing(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        dead = await make_in_state(store, subject, clock.now(), State.DEAD)
        assert await store.purge([]) == 0
        assert await get_one(store, dead.id) == dead

    async def test_purge_of_everything_deletes_every_dead_task(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        dead = [await make_in_state(store, subject, now, State.DEAD) for _ in range(3)]
        alive = await make_in_state(store, subject, now, State.RUNNING)
        assert await store.purge() == 3
        assert await store.get([r.id for r in dead]) == [None, None, None]
        assert await get_one(store, alive.id) == alive
        assert await store.purge(None) == 0

    async def test_prune_deletes_succeeded_and_cancelled_tasks_finished_before_the_time(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        old_ok = await make_in_state(store, subject, now, State.SUCCEEDED)
        old_cancelled = await make_in_state(store, subject, now, State.CANCELLED)
        old_dead = await make_in_state(store, subject, now, State.DEAD)
        active = [
            await make_in_state(store, subject, now, s)
            for s in (State.SCHEDULED, State.READY, State.RUNNING)
        ]
        new_ok = await make_in_state(store, subject, now + 100, State.SUCCEEDED)
        deleted = await store.prune(finished_before=now + 50, now=now + 200, limit=100)
        assert deleted == 2
        assert await store.get([old_ok.id, old_cancelled.id]) == [None, None]
        kept = await store.get([r.id for r in (old_dead, *active, new_ok)])
        assert None not in kept

    async def test_prune_respects_the_limit(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        done = [await make_in_state(store, subject, now, State.SUCCEEDED) for _ in range(3)]
        assert await store.prune(finished_before=now + 10, now=now + 10, limit=2) == 2
        assert await store.prune(finished_before=now + 10, now=now + 10, limit=2) == 1
        assert await store.get([r.id for r in done]) == [None, None, None]

    async def test_prune_frees_closed_idempotency_keys_and_keeps_open_ones(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = await make_in_state(store, subject, now, State.SUCCEEDED, idempotency_key=key)
        await store.prune(finished_before=now + 10, now=now + 10, limit=10)
        same = make_task(subject, now + 20, idempotency_key=key)
        created = await store.create([same], now=now + 20, idempotency_window=WINDOW)
        assert created == [Created(first.id, False, now)], "the key outlives its task"
        after = now + WINDOW + 1
        await store.prune(finished_before=after, now=after, limit=10)
        fresh = make_task(subject, after, idempotency_key=key)
        assert await store.create([fresh], now=after, idempotency_window=WINDOW) == [
            Created(fresh.id, True, after)
        ]
        duplicate = make_task(subject, after + 1, idempotency_key=key)
        assert await store.create([duplicate], now=after + 1, idempotency_window=WINDOW) == [
            Created(fresh.id, False, after)
        ]


def _ready_ages(store: TaskStore) -> ReadyAges:
    if not isinstance(store, ReadyAges):
        pytest.skip(f"{type(store).__name__} does not declare ReadyAges")
    return store


async def _create_stamped(
    store: TaskStore, subjects: str | list[str], times: list[float]
) -> list[Task]:
    """A task created at each of ``times``, its id stamped with that time (``_stamped``)."""
    names = [subjects] * len(times) if isinstance(subjects, str) else subjects
    tasks = [
        _stamped(make_task(name, at, run_at=at + 3600))
        for name, at in zip(names, times, strict=True)
    ]
    for task in tasks:
        await store.create([task], now=task.created_at, idempotency_window=WINDOW)
    return tasks


def _stamped(task: Task) -> Task:
    """``task`` with an id stamped with its ``created_at``: ids made in a test process
    run ahead of a test's clock once an earlier test moved it on (``new_id`` never goes
    back), and a time range is a range of ids."""
    at = task.created_at
    return task.replace(id=first_id(at)[:10] + new_id(at)[10:])
