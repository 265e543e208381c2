"""TaskStore checks, part 1: how tasks come in and go out to run (create to claim)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atp.core.errors import IdempotencyConflict, InvalidInput
from atp.core.ids import new_id
from atp.core.model import State, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import Claim, Clock, Created, TaskStore
from atp.core.service import Published, PublishRequest, TaskService
from atp.core.settings import Settings
from atp.sdk.conformance._store_support import (
    LEASE,
    OTHER,
    OWNER,
    WINDOW,
    count_of,
    get_one,
    make_finished,
    make_in_state,
    make_ready,
    make_running,
)
from atp.sdk.conformance._support import (
    PAYLOADS,
    deep_payload,
    full_task,
    make_task,
    payload_id,
    unique,
)

__all__ = ["IntakeChecks"]


class IntakeChecks:
    """create, get, take_due, release and claim; part of TaskStoreConformance."""

    # -- create ------------------------------------------------------------------------------

    async def test_implements_the_protocol(self, store: TaskStore) -> None:
        assert isinstance(store, TaskStore)

    async def test_create_returns_one_created_per_task_in_order(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        tasks = [make_task(subject, now, payload=index) for index in range(5)]
        created = await store.create(tasks, now=now, idempotency_window=WINDOW)
        assert created == [Created(task.id, True, task.run_at) for task in tasks]

    async def test_create_of_an_empty_batch_does_nothing(
        self, store: TaskStore, clock: Clock
    ) -> None:
        assert await store.create([], now=clock.now(), idempotency_window=WINDOW) == []

    async def test_create_keeps_every_envelope_field(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        task = full_task(subject, now)
        await store.create([task], now=now, idempotency_window=WINDOW)
        record = await get_one(store, task.id)
        assert record == TaskRecord(task=task, state=State.SCHEDULED, updated_at=now)

    async def test_create_keeps_absent_optionals_absent(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        task = make_task(subject, now, run_at=now + 10)
        await store.create([task], now=now, idempotency_window=WINDOW)
        record = await get_one(store, task.id)
        assert record.task == task
        assert record.task.headers == {}
        assert (
            record.task.idempotency_key,
            record.task.max_attempts,
            record.task.retry,
            record.task.timeout,
            record.task.schedule,
            record.task.tick,
            record.task.workflow_run,
            record.task.step,
        ) == (None,) * 8
        assert (record.lease_owner, record.lease_until, record.result) == (None, None, None)
        assert (record.errors, record.cancel_requested, record.finished_at) == ((), False, None)

    @pytest.mark.parametrize("payload", [*PAYLOADS, deep_payload(40)], ids=payload_id)
    async def test_payload_round_trips_exactly(
        self, store: TaskStore, clock: Clock, subject: str, payload: Any
    ) -> None:
        now = clock.now()
        task = await make_ready(store, subject, now, payload=payload, headers={"h": "ü ✓"})
        record = await get_one(store, task.id)
        assert record.task.payload == payload
        assert type(record.task.payload) is type(payload)
        [claim] = await store.claim([task.id], owner=OWNER, now=now, lease_until=now + LEASE)
        assert claim.record is not None
        assert claim.record.task == task.replace(attempt=1)

    async def test_create_is_ready_when_due_and_ready_until_is_given(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        past, due = make_task(subject, now, run_at=now - 5), make_task(subject, now)
        later = make_task(subject, now, run_at=now + 0.001)
        await store.create(
            [past, due, later], now=now, idempotency_window=WINDOW, ready_until=now + LEASE
        )
        records = await store.get([past.id, due.id, later.id])
        assert [r.state if r else None for r in records] == [
            State.READY,
            State.READY,
            State.SCHEDULED,
        ]
        assert [r.lease_until if r else None for r in records[:2]] == [now + LEASE] * 2

    async def test_create_without_ready_until_is_scheduled_even_when_due(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        task = make_task(subject, now, run_at=now - 5)
        await store.create([task], now=now, idempotency_window=WINDOW)
        assert (await get_one(store, task.id)).state is State.SCHEDULED

    async def test_create_with_a_key_inside_its_window_returns_the_existing_id(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = make_task(subject, now, idempotency_key=key, payload="first", run_at=now + 60)
        await store.create([first], now=now, idempotency_window=WINDOW)
        before = await store.counts()
        again = make_task(subject, now + 10, idempotency_key=key, payload="second")
        created = await store.create(
            [again], now=now + 10, idempotency_window=WINDOW, ready_until=now + 10 + LEASE
        )
        assert created == [Created(first.id, False, now + 60)], "the existing task's run_at"
        assert await store.get([again.id]) == [None]
        assert await store.counts() == before
        record = await get_one(store, first.id)
        assert (record.task.payload, record.state) == ("first", State.SCHEDULED)

    async def test_create_lets_the_first_task_with_a_key_win_inside_a_batch(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = make_task(subject, now, idempotency_key=key)
        plain = make_task(subject, now)
        second = make_task(subject, now, idempotency_key=key)
        created = await store.create([first, plain, second], now=now, idempotency_window=WINDOW)
        assert created == [
            Created(first.id, True, now),
            Created(plain.id, True, now),
            Created(first.id, False, now),
        ]
        assert await store.get([second.id]) == [None]
        assert count_of(await store.counts(), subject) == 2

    async def test_a_key_reused_with_other_parameters_is_refused_by_the_service(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        service, key = _service(store, clock), unique("key")
        asked = PublishRequest(subject, {"n": 1}, delay=60, idempotency_key=key, priority=2)
        (first,) = await service.publish([asked])
        again = PublishRequest(subject, {"n": 1}, delay=90, idempotency_key=key, priority=2)
        assert await service.publish([again]) == [Published(first.id, False, first.run_at)]
        before = await store.counts()
        changed = PublishRequest(subject, {"n": 2}, idempotency_key=key, timeout=5)
        with pytest.raises(IdempotencyConflict, match=first.id) as caught:
            await service.publish([changed])
        (conflict,) = caught.value.conflicts
        assert (conflict.task_id, conflict.fields) == (first.id, ("payload", "timeout", "priority"))
        assert caught.value.accepted == ()
        assert await store.counts() == before

    async def test_a_batch_with_a_conflicting_key_names_what_it_accepted(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        service, key = _service(store, clock), unique("key")
        (first,) = await service.publish([PublishRequest(subject, "a", idempotency_key=key)])
        batch = [
            PublishRequest(subject, "other"),
            PublishRequest(subject, "b", idempotency_key=key),
        ]
        with pytest.raises(IdempotencyConflict) as caught:
            await service.publish(batch)
        accepted = caught.value.accepted
        assert [c.index for c in caught.value.conflicts] == [1]
        assert accepted[1] is None
        assert isinstance(accepted[0], str)
        assert (await get_one(store, accepted[0])).task.payload == "other"
        assert (await get_one(store, first.id)).task.payload == "a"

    async def test_create_with_a_key_whose_window_closed_creates_a_new_task(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = make_task(subject, now, idempotency_key=key)
        await store.create([first], now=now, idempotency_window=60)
        later = make_task(subject, now + 61, idempotency_key=key)
        created = await store.create([later], now=now + 61, idempotency_window=60)
        assert created == [Created(later.id, True, later.run_at)]
        assert None not in await store.get([first.id, later.id])

    async def test_create_with_a_key_used_on_another_subject_creates_another_task(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key, other = clock.now(), unique("key"), f"{subject}.other"
        first = make_task(subject, now, idempotency_key=key, run_at=now + 60)
        await store.create([first], now=now, idempotency_window=WINDOW)
        elsewhere = make_task(other, now + 1, idempotency_key=key)
        created = await store.create([elsewhere], now=now + 1, idempotency_window=WINDOW)
        assert created == [Created(elsewhere.id, True, now + 1)], "keys are scoped by subject"
        again = make_task(other, now + 2, idempotency_key=key)
        created = await store.create([again], now=now + 2, idempotency_window=WINDOW)
        assert created == [Created(elsewhere.id, False, now + 1)]
        assert count_of(await store.counts(), subject) == 1
        assert count_of(await store.counts(), other) == 1

    async def test_create_scopes_a_key_by_subject_inside_a_batch(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key, other = clock.now(), unique("key"), f"{subject}.other"
        tasks = [make_task(s, now, idempotency_key=key) for s in (subject, other, subject, other)]
        created = await store.create(tasks, now=now, idempotency_window=WINDOW)
        assert [(c.id, c.created) for c in created] == [
            (tasks[0].id, True),
            (tasks[1].id, True),
            (tasks[0].id, False),
            (tasks[1].id, False),
        ]

    async def test_create_with_distinct_keys_creates_each_task(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        tasks = [make_task(subject, now, idempotency_key=unique("key")) for _ in range(3)]
        created = await store.create(tasks, now=now, idempotency_window=WINDOW)
        assert all(item.created for item in created)

    async def test_create_is_atomic_when_one_task_cannot_be_stored(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        good = make_task(subject, now, idempotency_key=unique("key"))
        bad = make_task(subject, now, payload={"not json": object()})
        try:
            await store.create([good, bad], now=now, idempotency_window=WINDOW)
        except InvalidInput:
            pass
        else:
            pytest.skip("the store accepts a payload JSON cannot encode: no error to test with")
        assert await store.get([good.id, bad.id]) == [None, None]
        retried = await store.create([good], now=now, idempotency_window=WINDOW)
        assert retried == [Created(good.id, True, now)], "a failed batch must not keep its keys"

    async def test_records_share_no_mutable_state_with_callers(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        payload, headers = {"items": [1, 2]}, {"h": "v"}
        task = make_task(subject, now, payload=payload, headers=headers)
        await store.create([task], now=now, idempotency_window=WINDOW)
        payload["items"].append(3)
        headers["h"] = "changed"
        record = await get_one(store, task.id)
        assert (record.task.payload, record.task.headers) == ({"items": [1, 2]}, {"h": "v"})
        record.task.payload["items"].append(4)
        assert (await get_one(store, task.id)).task.payload == {"items": [1, 2]}

    # -- get ---------------------------------------------------------------------------------

    async def test_get_returns_none_for_unknown_ids_in_input_order(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        one, two = make_task(subject, now), make_task(subject, now)
        await store.create([one, two], now=now, idempotency_window=WINDOW)
        records = await store.get([two.id, new_id(now), one.id])
        assert [r.id if r else None for r in records] == [two.id, None, one.id]
        assert await store.get([]) == []

    # -- take_due and release ----------------------------------------------------------------

    async def test_take_due_moves_due_tasks_to_ready_oldest_first_then_by_priority(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        oldest = make_task(subject, now, run_at=now - 30)
        low = make_task(subject, now, run_at=now - 10, priority=0)
        high = make_task(subject, now, run_at=now - 10, priority=5)
        due_now = make_task(subject, now, run_at=now)
        await store.create([due_now, low, high, oldest], now=now, idempotency_window=WINDOW)
        taken = await store.take_due(now=now, limit=10, ready_until=now + LEASE)
        assert taken == [oldest, high, low, due_now]
        for record in await store.get([task.id for task in taken]):
            assert record is not None
            assert (record.state, record.lease_until) == (State.READY, now + LEASE)

    async def test_take_due_leaves_future_tasks_scheduled(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        future = make_task(subject, now, run_at=now + 0.5)
        await store.create([future], now=now, idempotency_window=WINDOW)
        assert await store.take_due(now=now, limit=10, ready_until=now + LEASE) == []
        assert (await get_one(store, future.id)).state is State.SCHEDULED
        taken = await store.take_due(now=now + 0.5, limit=10, ready_until=now + LEASE)
        assert [task.id for task in taken] == [future.id]

    async def test_take_due_respects_the_limit_and_takes_the_oldest(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        tasks = [make_task(subject, now, run_at=now - 50 + i) for i in range(5)]
        await store.create(tasks[::-1], now=now, idempotency_window=WINDOW)
        first = await store.take_due(now=now, limit=2, ready_until=now + LEASE)
        second = await store.take_due(now=now, limit=2, ready_until=now + LEASE)
        rest = await store.take_due(now=now, limit=2, ready_until=now + LEASE)
        assert [[t.id for t in batch] for batch in (first, second, rest)] == [
            [tasks[0].id, tasks[1].id],
            [tasks[2].id, tasks[3].id],
            [tasks[4].id],
        ]
        assert await store.take_due(now=now, limit=2, ready_until=now + LEASE) == []

    async def test_take_due_takes_only_scheduled_tasks(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready = await make_ready(store, subject, now)
        running = await make_running(store, subject, now)
        cancelled = make_task(subject, now)
        await store.create([cancelled], now=now, idempotency_window=WINDOW)
        await store.cancel([cancelled.id], now=now)
        later = now + 2 * LEASE
        assert await store.take_due(now=later, limit=10, ready_until=later + LEASE) == []
        states = [r.state if r else None for r in await store.get([ready.id, running.id])]
        assert states == [State.READY, State.RUNNING]

    async def test_take_due_never_gives_a_task_to_two_concurrent_callers(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        tasks = [make_task(subject, now, run_at=now - 1) for _ in range(40)]
        await store.create(tasks, now=now, idempotency_window=WINDOW)
        take = store.take_due(now=now, limit=30, ready_until=now + LEASE)
        first, second = await asyncio.gather(
            take, store.take_due(now=now, limit=30, ready_until=now + LEASE)
        )
        ids = [task.id for task in first + second]
        assert len(ids) == len(set(ids)), "a task was taken twice"
        assert sorted(ids) == sorted(task.id for task in tasks)

    async def test_release_moves_ready_tasks_back_and_leaves_others(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready = await make_ready(store, subject, now)
        scheduled = make_task(subject, now, run_at=now + 99)
        await store.create([scheduled], now=now, idempotency_window=WINDOW)
        running = await make_running(store, subject, now)
        done = await make_finished(store, subject, now, State.SUCCEEDED)
        before = await store.get([scheduled.id, running.id, done.id])
        await store.release([ready.id, scheduled.id, running.id, done.id, new_id(now)], now=now)
        assert (await get_one(store, ready.id)).state is State.SCHEDULED
        assert await store.get([scheduled.id, running.id, done.id]) == before
        taken = await store.take_due(now=now, limit=10, ready_until=now + LEASE)
        assert [task.id for task in taken] == [ready.id]

    async def test_stamp_ready_restamps_ready_tasks_and_leaves_others(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready, scheduled = make_task(subject, now), make_task(subject, now, run_at=now + 99)
        await store.create([ready], now=now, idempotency_window=WINDOW, ready_until=now + 1)
        await store.create([scheduled], now=now, idempotency_window=WINDOW)
        running = await make_running(store, subject, now)
        done = await make_finished(store, subject, now, State.SUCCEEDED)
        before = await store.get([scheduled.id, running.id, done.id])
        ids = [ready.id, scheduled.id, running.id, done.id, new_id(now)]
        await store.stamp_ready(ids, ready_until=now + 50)
        record = await get_one(store, ready.id)
        assert (record.state, record.lease_until) == (State.READY, now + 50)
        assert await store.get([scheduled.id, running.id, done.id]) == before
        # The new stamp is the one redispatch goes by: not before it, then once.
        assert await store.redispatch(now=now + 49, limit=10, ready_until=now + 99) == []
        again = await store.redispatch(now=now + 50, limit=10, ready_until=now + 99)
        assert [task.id for task in again] == [ready.id]

    # -- claim -------------------------------------------------------------------------------

    async def test_claim_runs_a_ready_task_under_a_lease(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        task = await make_ready(store, subject, now)
        [claim] = await store.claim([task.id], owner=OWNER, now=now + 1, lease_until=now + 31)
        assert claim.claimed
        assert claim.record == await get_one(store, task.id)
        record = claim.record
        assert (record.state, record.task.attempt) == (State.RUNNING, 1)
        assert (record.lease_owner, record.lease_until, record.updated_at) == (
            OWNER,
            now + 31,
            now + 1,
        )
        assert record.task == task.replace(attempt=1)

    async def test_claim_refuses_a_task_running_under_a_live_lease(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        [claim] = await store.claim(
            [running.id], owner=OTHER, now=now + LEASE - 0.001, lease_until=now + 2 * LEASE
        )
        assert claim == Claim(running, False)
        assert await get_one(store, running.id) == running

    async def test_claim_takes_over_an_expired_lease(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        expiry = now + LEASE
        [claim] = await store.claim(
            [running.id], owner=OTHER, now=expiry, lease_until=expiry + LEASE
        )
        assert claim.claimed, "a lease with lease_until <= now has expired"
        assert claim.record is not None
        assert (claim.record.state, claim.record.task.attempt) == (State.RUNNING, 2)
        assert (claim.record.lease_owner, claim.record.lease_until) == (OTHER, expiry + LEASE)

    async def test_claim_of_an_unknown_id_returns_no_record(
        self, store: TaskStore, clock: Clock
    ) -> None:
        now = clock.now()
        claims = await store.claim([new_id(now)], owner=OWNER, now=now, lease_until=now + LEASE)
        assert claims == [Claim(None, False)]
        assert await store.claim([], owner=OWNER, now=now, lease_until=now + LEASE) == []

    @pytest.mark.parametrize(
        "state", [State.SCHEDULED, State.SUCCEEDED, State.DEAD, State.CANCELLED], ids=str
    )
    async def test_claim_returns_other_states_as_they_stand(
        self, store: TaskStore, clock: Clock, subject: str, state: State
    ) -> None:
        now = clock.now()
        record = await make_in_state(store, subject, now, state)
        later = now + 2 * LEASE
        [claim] = await store.claim([record.id], owner=OTHER, now=later, lease_until=later + 1)
        assert claim == Claim(record, False)
        assert await get_one(store, record.id) == record

    async def test_claim_decides_per_item(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready = await make_ready(store, subject, now)
        running = await make_running(store, subject, now)
        unknown = new_id(now)
        claims = await store.claim(
            [running.id, unknown, ready.id], owner=OTHER, now=now, lease_until=now + LEASE
        )
        assert [c.claimed for c in claims] == [False, False, True]
        assert [c.record.id if c.record else None for c in claims] == [running.id, None, ready.id]


def _service(store: TaskStore, clock: Clock) -> TaskService:
    """A TaskService over ``store``: the idempotency comparison lives in the service, and
    holds only if the store gives back every field a producer set, its headers included."""
    platform = Platform.build(Settings(store="memory://"), clock=clock, local=True)
    platform.store, platform.fused = store, False
    return TaskService(platform)
