"""The Activity conformance suite: every guarantee of ``atp.core.ports.Activity``.

Subclass it under a ``Test`` name and provide a ``store`` fixture, a TaskStore that is an
Activity too::

    class TestMyActivity(ActivityConformance):
        @pytest.fixture
        async def store(self, clock):
            store = make_my_store(clock)   # a fresh, EMPTY store
            yield store
            await store.close()

The store must be empty at the start of each test, as for ``TaskStoreConformance``:
``activity`` and ``oldest_due`` read the whole store. The suite also checks that
``counts()`` stays exact through every kind of transition, since a store that keeps
activity counters usually keeps its counts the same way.

Time: an attempt is counted in the minute of the write that ended it, and every write
takes its time as an argument, so this suite never waits. Its times are offsets from the
start of the first whole minute after ``clock.now()``.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from atp.core.model import AttemptError, Dedup, DedupMode, State
from atp.core.ports import (
    ACTIVITY_BUCKET,
    ACTIVITY_KEPT,
    Activity,
    ActivityCount,
    Clock,
    Outcome,
    Requeue,
    TaskStore,
)
from atp.sdk.conformance._store_support import (
    LEASE,
    OWNER,
    WINDOW,
    make_in_state,
    make_ready,
    make_running,
    own_counts,
)
from atp.sdk.conformance._support import PortSuite, make_task, missing_fixture, unique

__all__ = ["ActivityConformance"]

_Tally = dict[tuple[float, str, State], int]


def bucket_of(at: float) -> float:
    """The start of the bucket ``at`` falls in."""
    return math.floor(at / ACTIVITY_BUCKET) * ACTIVITY_BUCKET


def tally(counts: list[ActivityCount]) -> _Tally:
    """The counts by (bucket, subject, state); a bucket listed twice fails."""
    found: _Tally = {}
    for count in counts:
        key = (count.at, count.subject, count.state)
        assert key not in found, f"bucket listed twice: {count}"
        assert count.count > 0, f"a zero bucket was listed: {count}"
        found[key] = count.count
    return found


def failure(attempt: int, at: float) -> AttemptError:
    return AttemptError(attempt, at, "failed", "error")


class ActivityConformance(PortSuite):
    """Checks an Activity store against the contract in ``atp.core.ports``."""

    @pytest.fixture
    def store(self, clock: Clock) -> TaskStore:
        """Override: a fresh, empty TaskStore that is an Activity, built with ``clock``."""
        missing_fixture(self, "store")

    @pytest.fixture
    def subject(self) -> str:
        """A subject no other test uses."""
        return f"{unique('activity')}.work"

    @pytest.fixture
    def start(self, clock: Clock) -> float:
        """The start of the first whole bucket after ``clock.now()``."""
        return bucket_of(clock.now()) + ACTIVITY_BUCKET

    # -- activity --------------------------------------------------------------------------

    async def test_implements_the_protocol(self, store: TaskStore) -> None:
        assert isinstance(store, Activity), "the store does not implement Activity"

    async def test_an_empty_store_has_no_activity_and_nothing_due(self, store: TaskStore) -> None:
        activity = _activity(store)
        assert await activity.activity(since=0.0) == []
        assert await activity.oldest_due() is None

    async def test_finish_counts_each_ending_in_the_minute_of_its_write(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        states = (State.SUCCEEDED, State.SCHEDULED, State.DEAD, State.CANCELLED)
        for offset, state in enumerate(states, start=1):
            running = await make_running(store, subject, start)
            at = start + offset
            error = None if state is State.SUCCEEDED else failure(1, at)
            outcome = Outcome(running.id, OWNER, state, at=at, error=error, run_at=at + 600)
            assert await store.finish([outcome]) == [True]
        assert tally(await _activity(store).activity(since=start)) == {
            (start, subject, state): 1 for state in states
        }

    async def test_cancel_counts_pending_tasks_and_not_a_cancel_request(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        waiting = await make_in_state(store, subject, start, State.SCHEDULED)
        ready = await make_ready(store, subject, start)
        running = await make_running(store, subject, start)
        await store.cancel([waiting.id, ready.id, running.id], now=start + 70)
        assert tally(await _activity(store).activity(since=0.0)) == {
            (start + ACTIVITY_BUCKET, subject, State.CANCELLED): 2
        }

    async def test_recover_counts_what_each_lost_lease_ended_in(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        await make_running(store, subject, start)
        await make_running(store, subject, start, max_attempts=1)
        flagged = await make_running(store, subject, start)
        await store.cancel([flagged.id], now=start + 1)
        changed = await store.recover(now=start + LEASE, limit=10, default_max_attempts=None)
        assert len(changed) == 3
        assert tally(await _activity(store).activity(since=start)) == {
            (start, subject, State.SCHEDULED): 1,
            (start, subject, State.DEAD): 1,
            (start, subject, State.CANCELLED): 1,
        }

    async def test_a_debounce_counts_the_task_it_replaced_as_cancelled(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        dedup, key = Dedup(DedupMode.DEBOUNCE, 30.0), unique("key")
        for offset in (0, 5):
            task = make_task(subject, start + offset, idempotency_key=key, dedup=dedup)
            await store.create([task], now=start + offset, idempotency_window=WINDOW)
        assert tally(await _activity(store).activity(since=start)) == {
            (start, subject, State.CANCELLED): 1
        }

    async def test_writes_that_end_no_attempt_count_nothing(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        dead = await make_in_state(store, subject, start, State.DEAD)
        before = await _activity(store).activity(since=0.0)
        now = start + 1
        await make_in_state(store, subject, now, State.SCHEDULED, run_at=now + 3600)
        due = await make_in_state(store, subject, now, State.SCHEDULED)
        [taken] = await store.take_due(now=now, limit=10, ready_until=now + LEASE)
        assert taken.id == due.id
        await store.release([taken.id], now=now)
        await store.take_due(now=now, limit=10, ready_until=now + LEASE)
        await store.stamp_ready([taken.id], ready_until=now + 2 * LEASE)
        await store.redispatch(now=now, limit=10, ready_until=now + LEASE, everything=True)
        await store.claim([taken.id], owner=OWNER, now=now, lease_until=now + LEASE)
        await store.heartbeat([taken.id], owner=OWNER, lease_until=now + 2 * LEASE)
        await store.cancel([taken.id], now=now)  # a request only: it keeps running
        await store.requeue([Requeue(dead.id, run_at=now)], now=now)
        await store.purge()
        await store.prune(finished_before=now + 3600, now=now, limit=100)
        assert await _activity(store).activity(since=0.0) == before

    async def test_deleting_tasks_keeps_the_activity_they_made(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        await make_in_state(store, subject, start, State.SUCCEEDED)
        await make_in_state(store, subject, start, State.DEAD)
        expected = {(start, subject, State.SUCCEEDED): 1, (start, subject, State.DEAD): 1}
        assert tally(await _activity(store).activity(since=start)) == expected
        assert await store.purge() == 1
        assert await store.prune(finished_before=start + 1, now=start + 1, limit=10) == 1
        assert tally(await _activity(store).activity(since=start)) == expected

    async def test_buckets_come_oldest_first_and_since_rounds_down(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        for offset in (130, 1, 59, 60):
            await make_in_state(store, subject, start + offset, State.SUCCEEDED)
        activity = _activity(store)
        minute = ACTIVITY_BUCKET
        found = await activity.activity(since=start)
        assert [(c.at, c.count) for c in found] == [
            (start, 2),
            (start + minute, 1),
            (start + 2 * minute, 1),
        ]
        later = await activity.activity(since=start + minute + 1)
        assert [c.at for c in later] == [start + minute, start + 2 * minute]
        assert await activity.activity(since=start + 3 * minute) == []

    async def test_subjects_and_states_are_counted_apart(
        self, store: TaskStore, start: float
    ) -> None:
        prefix = unique("activity")
        one, two = f"{prefix}.one", f"{prefix}.two"
        for subject, state in ((one, State.SUCCEEDED), (two, State.SUCCEEDED), (two, State.DEAD)):
            await make_in_state(store, subject, start, state)
        await make_in_state(store, one, start + 1, State.SUCCEEDED)
        assert tally(await _activity(store).activity(since=start)) == {
            (start, one, State.SUCCEEDED): 2,
            (start, two, State.SUCCEEDED): 1,
            (start, two, State.DEAD): 1,
        }

    async def test_prune_drops_buckets_older_than_kept_and_keeps_the_rest(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        now = start + ACTIVITY_KEPT + 10 * ACTIVITY_BUCKET
        recent = bucket_of(now - ACTIVITY_KEPT)  # it ends within ACTIVITY_KEPT of now
        for at in (start, recent, now):
            await make_in_state(store, subject, at, State.DEAD)  # DEAD: prune keeps the task
        await store.prune(finished_before=start, now=now, limit=100)
        found = await _activity(store).activity(since=0.0)
        assert [c.at for c in found] == [recent, bucket_of(now)]

    # -- oldest_due ------------------------------------------------------------------------

    async def test_oldest_due_is_the_earliest_run_at_of_scheduled_tasks(
        self, store: TaskStore, subject: str, start: float
    ) -> None:
        activity = _activity(store)
        later = await make_in_state(store, subject, start, State.SCHEDULED, run_at=start + 100)
        await make_in_state(store, subject, start, State.SCHEDULED, run_at=start + 50)
        await make_ready(store, subject, start, run_at=start - 500)
        running = await make_running(store, subject, start, run_at=start - 1000)
        assert await activity.oldest_due() == start + 50
        retry = Outcome(running.id, OWNER, State.SCHEDULED, at=start, run_at=start + 10)
        assert await store.finish([retry]) == [True]
        assert await activity.oldest_due() == start + 10
        await store.take_due(now=start + 60, limit=10, ready_until=start + 60 + LEASE)
        assert await activity.oldest_due() == start + 100
        await store.cancel([later.id], now=start + 60)
        assert await activity.oldest_due() is None

    # -- counts ----------------------------------------------------------------------------

    async def test_counts_stay_exact_through_every_kind_of_transition(
        self, store: TaskStore, start: float
    ) -> None:
        prefix = unique("exact")
        one, two = f"{prefix}.one", f"{prefix}.two"
        ids: list[str] = []

        async def check(step: str) -> None:
            records = [r for r in await store.get(ids) if r is not None]
            expected = Counter((r.subject, r.state) for r in records)
            assert own_counts(await store.counts(), prefix) == dict(expected), step

        now = start
        for subject in (one, two, one):
            ids.append((await make_ready(store, subject, now)).id)
            later = make_task(subject, now, run_at=now + 10)
            await store.create([later], now=now, idempotency_window=WINDOW)
            ids.append(later.id)
        await check("create")
        claims = await store.claim(ids[::2], owner=OWNER, now=now, lease_until=now + LEASE)
        await check("claim")
        running = [c.record.id for c in claims if c.record is not None]
        ended = (State.SUCCEEDED, State.SCHEDULED, State.DEAD)
        outcomes = [
            Outcome(task_id, OWNER, state, at=now + 1, error=None if ok else failure(1, now + 1))
            for task_id, state, ok in zip(running, ended, (True, False, False), strict=True)
        ]
        await store.finish(outcomes)
        await check("finish")
        due = await store.take_due(now=now + 10, limit=10, ready_until=now + 10 + LEASE)
        await check("take_due")
        await store.release([due[0].id], now=now + 10)
        await check("release")
        await store.cancel([due[0].id, due[1].id], now=now + 11)
        await check("cancel")
        [taken] = await store.claim([due[2].id], owner=OWNER, now=now + 12, lease_until=now + 13)
        assert taken.claimed
        await store.recover(now=now + 20, limit=10, default_max_attempts=1)
        await check("recover")
        dead = [r.id for r in await store.get(ids) if r is not None and r.state is State.DEAD]
        await store.requeue([Requeue(dead[0], run_at=now + 30)], now=now + 21)
        await check("requeue")
        key, dedup = unique("key"), Dedup(DedupMode.DEBOUNCE, 5.0)
        for offset in (22, 23):
            task = make_task(two, now + offset, idempotency_key=key, dedup=dedup)
            await store.create([task], now=now + offset, idempotency_window=WINDOW)
            ids.append(task.id)
        await check("debounce")
        await make_in_state(store, two, now + 24, State.DEAD)
        await store.purge()
        await check("purge")
        await store.prune(finished_before=now + 100, now=now + 100, limit=100)
        await check("prune")
        left = Counter[State]()
        for (_, state), n in own_counts(await store.counts(), prefix).items():
            left[state] += n
        assert left == {State.SCHEDULED: 2, State.READY: 1}, "the steps went astray"


def _activity(store: TaskStore) -> Activity:
    assert isinstance(store, Activity), "the store does not implement Activity"
    return store
