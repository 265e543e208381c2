"""The TaskStore conformance suite: every guarantee of ``atp.core.ports.TaskStore``.

Subclass it under a ``Test`` name and provide a ``store`` fixture::

    class TestMyStore(TaskStoreConformance):
        @pytest.fixture
        async def store(self, clock):
            store = make_my_store(clock)   # a fresh, EMPTY store
            yield store
            await store.close()

The store must be empty at the start of each test: take_due, recover, redispatch,
purge and prune act on the whole store, and the suite checks exactly what they touched.
On a shared server, give each test its own key prefix, schema or database.

Time: every TaskStore method takes its times as arguments, so this suite never waits.
Its times are offsets from ``clock.now()``; the default ``clock`` fixture is a
``ManualClock`` and overriding it with a ``SystemClock`` changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from atp.core.errors import FencedOut, InvalidInput
from atp.core.ids import new_id
from atp.core.model import AttemptError, State, Task, TaskRecord
from atp.core.ports import (
    Claim,
    Clock,
    Created,
    Fence,
    LeaseStatus,
    Outcome,
    Page,
    Requeue,
    TaskQuery,
    TaskStore,
)
from atp.sdk.conformance._support import (
    PAYLOADS,
    PortSuite,
    deep_payload,
    full_task,
    make_task,
    payload_id,
    unique,
)

__all__ = ["TaskStoreConformance"]

LEASE = 30.0
WINDOW = 3600.0
OWNER = "worker-a"
OTHER = "worker-b"


class TaskStoreConformance(PortSuite):
    """Checks a TaskStore against the contract in ``atp.core.ports``."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest.fixture
    def store(self, clock: Clock) -> TaskStore:
        """Override: a fresh, empty TaskStore built with ``clock``."""
        pytest.fail(f"{type(self).__name__} must define a `store` fixture (see its docstring)")

    @pytest.fixture
    def subject(self) -> str:
        """A subject no other test uses."""
        return f"{unique('store')}.work"

    # -- create ------------------------------------------------------------------------------

    async def test_implements_the_protocol(self, store: TaskStore) -> None:
        assert isinstance(store, TaskStore)

    async def test_create_returns_one_created_per_task_in_order(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        tasks = [make_task(subject, now, payload=index) for index in range(5)]
        created = await store.create(tasks, now=now, idempotency_window=WINDOW)
        assert created == [Created(task.id, True) for task in tasks]

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
        task = make_task(subject, now, payload=payload, headers={"h": "ü ✓"})
        await store.create([task], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
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
        first = make_task(subject, now, idempotency_key=key, payload="first")
        await store.create([first], now=now, idempotency_window=WINDOW)
        before = await store.counts()
        again = make_task(subject, now + 10, idempotency_key=key, payload="second")
        created = await store.create(
            [again], now=now + 10, idempotency_window=WINDOW, ready_until=now + 10 + LEASE
        )
        assert created == [Created(first.id, False)]
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
            Created(first.id, True),
            Created(plain.id, True),
            Created(first.id, False),
        ]
        assert await store.get([second.id]) == [None]
        assert count_of(await store.counts(), subject) == 2

    async def test_create_with_a_key_whose_window_closed_creates_a_new_task(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now, key = clock.now(), unique("key")
        first = make_task(subject, now, idempotency_key=key)
        await store.create([first], now=now, idempotency_window=60)
        later = make_task(subject, now + 61, idempotency_key=key)
        created = await store.create([later], now=now + 61, idempotency_window=60)
        assert created == [Created(later.id, True)]
        assert None not in await store.get([first.id, later.id])

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
        assert retried == [Created(good.id, True)], "a failed batch must not keep its keys"

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
        ready = make_task(subject, now)
        await store.create([ready], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
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
        ready, scheduled = make_task(subject, now), make_task(subject, now, run_at=now + 99)
        await store.create([ready], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
        await store.create([scheduled], now=now, idempotency_window=WINDOW)
        running = await make_running(store, subject, now)
        done = await make_finished(store, subject, now, State.SUCCEEDED)
        before = await store.get([scheduled.id, running.id, done.id])
        await store.release([ready.id, scheduled.id, running.id, done.id, new_id(now)], now=now)
        assert (await get_one(store, ready.id)).state is State.SCHEDULED
        assert await store.get([scheduled.id, running.id, done.id]) == before
        taken = await store.take_due(now=now, limit=10, ready_until=now + LEASE)
        assert [task.id for task in taken] == [ready.id]

    # -- claim -------------------------------------------------------------------------------

    async def test_claim_runs_a_ready_task_under_a_lease(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        task = make_task(subject, now)
        await store.create([task], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
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
        ready = make_task(subject, now)
        await store.create([ready], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
        running = await make_running(store, subject, now)
        unknown = new_id(now)
        claims = await store.claim(
            [running.id, unknown, ready.id], owner=OTHER, now=now, lease_until=now + LEASE
        )
        assert [c.claimed for c in claims] == [False, False, True]
        assert [c.record.id if c.record else None for c in claims] == [running.id, None, ready.id]

    # -- heartbeat ---------------------------------------------------------------------------

    async def test_heartbeat_extends_a_held_lease(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        status = await store.heartbeat([running.id], owner=OWNER, lease_until=now + 100)
        assert status == [LeaseStatus.HELD]
        assert (await get_one(store, running.id)).lease_until == now + 100
        later = now + LEASE + 1
        [claim] = await store.claim([running.id], owner=OTHER, now=later, lease_until=later + 1)
        assert not claim.claimed, "an extended lease must not be taken over"

    async def test_heartbeat_reports_lost_to_another_owner(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        status = await store.heartbeat([running.id], owner=OTHER, lease_until=now + 100)
        assert status == [LeaseStatus.LOST]
        assert await get_one(store, running.id) == running

    async def test_heartbeat_reports_lost_after_a_takeover(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        later = now + LEASE + 1
        await store.claim([running.id], owner=OTHER, now=later, lease_until=later + LEASE)
        status = await store.heartbeat([running.id], owner=OWNER, lease_until=later + 100)
        assert status == [LeaseStatus.LOST]
        record = await get_one(store, running.id)
        assert (record.lease_owner, record.lease_until) == (OTHER, later + LEASE)

    async def test_heartbeat_reports_lost_once_finished_or_unknown(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        done = await make_finished(store, subject, now, State.SUCCEEDED)
        status = await store.heartbeat([done.id, new_id(now)], owner=OWNER, lease_until=now + 99)
        assert status == [LeaseStatus.LOST, LeaseStatus.LOST]
        assert await get_one(store, done.id) == done

    async def test_heartbeat_reports_a_cancel_request_and_extends(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        held = await make_running(store, subject, now)
        await store.cancel([running.id], now=now + 1)
        status = await store.heartbeat([running.id, held.id], owner=OWNER, lease_until=now + 99)
        assert status == [LeaseStatus.CANCEL_REQUESTED, LeaseStatus.HELD]
        record = await get_one(store, running.id)
        assert (record.state, record.lease_until) == (State.RUNNING, now + 99)

    # -- finish ------------------------------------------------------------------------------

    async def test_finish_succeeded_stores_the_result(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        result = {"total": 12.5, "lines": ["ä", None, [True]], "emoji": "✅"}
        outcome = Outcome(running.id, OWNER, State.SUCCEEDED, at=now + 2, result=result)
        assert await store.finish([outcome]) == [True]
        record = await get_one(store, running.id)
        assert (record.state, record.result, record.finished_at) == (
            State.SUCCEEDED,
            result,
            now + 2,
        )
        assert (record.task.attempt, record.errors) == (1, ())

    async def test_finish_by_another_owner_changes_nothing(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        outcome = Outcome(running.id, OTHER, State.SUCCEEDED, at=now + 1, result=1)
        assert await store.finish([outcome]) == [False]
        assert await get_one(store, running.id) == running

    async def test_finish_after_a_takeover_changes_nothing(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        later = now + LEASE
        [claim] = await store.claim([running.id], owner=OTHER, now=later, lease_until=later + 9)
        late = Outcome(running.id, OWNER, State.SUCCEEDED, at=later + 1, result="late")
        assert await store.finish([late]) == [False]
        assert await get_one(store, running.id) == claim.record

    async def test_finish_applies_after_expiry_when_nobody_took_over(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        outcome = Outcome(running.id, OWNER, State.SUCCEEDED, at=now + LEASE + 5, result=3)
        assert await store.finish([outcome]) == [True]
        assert (await get_one(store, running.id)).state is State.SUCCEEDED

    async def test_finish_scheduled_retries_at_run_at_and_keeps_errors_in_order(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        first = AttemptError(attempt=1, at=now + 1, message="boom ✗", kind="error")
        retry = Outcome(
            running.id, OWNER, State.SCHEDULED, at=now + 1, error=first, run_at=now + 60
        )
        assert await store.finish([retry]) == [True]
        record = await get_one(store, running.id)
        assert (record.state, record.task.run_at, record.errors) == (
            State.SCHEDULED,
            now + 60,
            (first,),
        )
        assert (record.task.attempt, record.finished_at) == (1, None)
        assert await store.take_due(now=now + 59, limit=10, ready_until=now + 99) == []
        [task] = await store.take_due(now=now + 60, limit=10, ready_until=now + 99)
        [claim] = await store.claim([task.id], owner=OTHER, now=now + 61, lease_until=now + 99)
        assert claim.record is not None
        assert claim.record.task.attempt == 2
        second = AttemptError(attempt=2, at=now + 62, message="timed out", kind="timeout")
        dead = Outcome(task.id, OTHER, State.DEAD, at=now + 62, error=second)
        assert await store.finish([dead]) == [True]
        assert (await get_one(store, task.id)).errors == (first, second)

    async def test_finish_with_refund_does_not_count_the_attempt(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        refund = Outcome(
            running.id, OWNER, State.SCHEDULED, at=now + 1, run_at=now + 1, refund=True
        )
        assert await store.finish([refund]) == [True]
        record = await get_one(store, running.id)
        assert (record.state, record.task.attempt) == (State.SCHEDULED, 0)
        [task] = await store.take_due(now=now + 1, limit=1, ready_until=now + 99)
        [claim] = await store.claim([task.id], owner=OWNER, now=now + 2, lease_until=now + 99)
        assert claim.record is not None
        assert claim.record.task.attempt == 1

    async def test_finish_dead_records_the_error_and_the_end(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        error = AttemptError(attempt=1, at=now + 3, message="gave up", kind="fail")
        dead = Outcome(running.id, OWNER, State.DEAD, at=now + 3, error=error)
        assert await store.finish([dead]) == [True]
        record = await get_one(store, running.id)
        assert (record.state, record.errors, record.finished_at) == (State.DEAD, (error,), now + 3)
        assert record.last_error == error

    async def test_finish_cancelled_honours_a_cancel_request(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        await store.cancel([running.id], now=now + 1)
        cancelled = Outcome(running.id, OWNER, State.CANCELLED, at=now + 2)
        assert await store.finish([cancelled]) == [True]
        record = await get_one(store, running.id)
        assert (record.state, record.finished_at) == (State.CANCELLED, now + 2)

    async def test_finish_of_a_task_not_running_or_unknown_changes_nothing(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready = make_task(subject, now)
        await store.create([ready], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
        done = await make_finished(store, subject, now, State.SUCCEEDED)
        before = await store.get([ready.id, done.id])
        outcomes = [
            Outcome(task_id, OWNER, State.SUCCEEDED, at=now + 1, result="x")
            for task_id in (ready.id, done.id, new_id(now))
        ]
        assert await store.finish(outcomes) == [False, False, False]
        assert await store.get([ready.id, done.id]) == before

    async def test_finish_decides_per_outcome(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        mine, theirs = (
            await make_running(store, subject, now),
            await make_running(store, subject, now, owner=OTHER),
        )
        outcomes = [
            Outcome(theirs.id, OWNER, State.SUCCEEDED, at=now + 1),
            Outcome(mine.id, OWNER, State.SUCCEEDED, at=now + 1),
        ]
        assert await store.finish(outcomes) == [False, True]
        assert await get_one(store, theirs.id) == theirs
        assert await store.finish([]) == []

    # -- cancel ------------------------------------------------------------------------------

    @pytest.mark.parametrize("state", [State.SCHEDULED, State.READY], ids=str)
    async def test_cancel_ends_a_task_that_is_not_running(
        self, store: TaskStore, clock: Clock, subject: str, state: State
    ) -> None:
        now = clock.now()
        record = await make_in_state(store, subject, now, state)
        [after] = await store.cancel([record.id], now=now + 5)
        assert after is not None
        assert (after.state, after.finished_at, after.updated_at) == (
            State.CANCELLED,
            now + 5,
            now + 5,
        )
        assert after == await get_one(store, record.id)
        later = now + 2 * LEASE
        assert await store.take_due(now=later, limit=10, ready_until=later + 1) == []
        [claim] = await store.claim([record.id], owner=OWNER, now=later, lease_until=later + 1)
        assert not claim.claimed
        assert (
            await store.redispatch(now=later, limit=10, ready_until=later + 1, everything=True)
            == []
        )

    async def test_cancel_of_a_running_task_requests_it(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        [after] = await store.cancel([running.id], now=now + 1)
        assert after is not None
        assert (after.state, after.cancel_requested, after.lease_owner) == (
            State.RUNNING,
            True,
            OWNER,
        )
        assert after == await get_one(store, running.id)

    @pytest.mark.parametrize("state", [State.SUCCEEDED, State.DEAD, State.CANCELLED], ids=str)
    async def test_cancel_leaves_a_finished_task_as_it_is(
        self, store: TaskStore, clock: Clock, subject: str, state: State
    ) -> None:
        now = clock.now()
        record = await make_in_state(store, subject, now, state)
        assert await store.cancel([record.id, new_id(now)], now=now + 9) == [record, None]
        assert await get_one(store, record.id) == record

    # -- recover -----------------------------------------------------------------------------

    async def test_recover_reschedules_expired_leases_with_a_lease_error(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        expired = await make_running(store, subject, now, max_attempts=3)
        live = await make_running(store, subject, now + 10, max_attempts=3)
        later = now + LEASE
        recovered = await store.recover(now=later, limit=10, default_max_attempts=3)
        assert recovered == [await get_one(store, expired.id)]
        [record] = recovered
        assert (record.state, record.task.run_at, record.task.attempt) == (
            State.SCHEDULED,
            later,
            1,
        )
        [error] = record.errors
        assert (error.attempt, error.at, error.kind) == (1, later, "lease")
        assert await get_one(store, live.id) == live
        [task] = await store.take_due(now=later, limit=10, ready_until=later + LEASE)
        assert task.id == expired.id

    async def test_recover_kills_a_task_that_used_its_attempts(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        expired = await make_running(store, subject, now, max_attempts=1)
        later = now + LEASE + 1
        [record] = await store.recover(now=later, limit=10, default_max_attempts=5)
        assert (record.id, record.state, record.finished_at) == (expired.id, State.DEAD, later)
        assert record.last_error is not None
        assert record.last_error.kind == "lease"

    async def test_recover_uses_the_default_max_attempts_when_the_task_has_none(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        t1 = now + LEASE
        [first] = await store.recover(now=t1, limit=10, default_max_attempts=2)
        assert first.state is State.SCHEDULED
        await store.take_due(now=t1, limit=10, ready_until=t1 + LEASE)
        await store.claim([running.id], owner=OWNER, now=t1, lease_until=t1 + LEASE)
        t2 = t1 + LEASE
        [second] = await store.recover(now=t2, limit=10, default_max_attempts=2)
        assert (second.state, second.task.attempt, len(second.errors)) == (State.DEAD, 2, 2)

    async def test_recover_respects_the_limit(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = [await make_running(store, subject, now) for _ in range(3)]
        later = now + LEASE
        first = await store.recover(now=later, limit=2, default_max_attempts=3)
        rest = await store.recover(now=later, limit=2, default_max_attempts=3)
        assert (len(first), len(rest)) == (2, 1)
        assert sorted(r.id for r in first + rest) == sorted(r.id for r in running)
        assert await store.recover(now=later, limit=2, default_max_attempts=3) == []

    # -- redispatch --------------------------------------------------------------------------

    async def test_redispatch_returns_ready_tasks_whose_dispatch_expired(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        stale, fresh = make_task(subject, now), make_task(subject, now)
        await store.create([stale], now=now, idempotency_window=WINDOW, ready_until=now + 10)
        await store.create([fresh], now=now, idempotency_window=WINDOW, ready_until=now + 20)
        await make_running(store, subject, now)
        await store.create([make_task(subject, now)], now=now, idempotency_window=WINDOW)
        again = await store.redispatch(now=now + 10, limit=10, ready_until=now + 50)
        assert again == [stale]
        records = await store.get([stale.id, fresh.id])
        assert [(r.state, r.lease_until) if r else None for r in records] == [
            (State.READY, now + 50),
            (State.READY, now + 20),
        ]
        assert await store.redispatch(now=now + 10, limit=10, ready_until=now + 60) == []

    async def test_redispatch_of_everything_returns_every_ready_task(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready = [make_task(subject, now) for _ in range(3)]
        await store.create(ready, now=now, idempotency_window=WINDOW, ready_until=now + 99)
        await make_running(store, subject, now)
        again = await store.redispatch(now=now, limit=10, ready_until=now + 50, everything=True)
        assert sorted(t.id for t in again) == sorted(t.id for t in ready)
        for record in await store.get([t.id for t in ready]):
            assert record is not None
            assert record.lease_until == now + 50

    async def test_redispatch_respects_the_limit(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready = [make_task(subject, now) for _ in range(3)]
        await store.create(ready, now=now, idempotency_window=WINDOW, ready_until=now + 1)
        first = await store.redispatch(now=now + 1, limit=2, ready_until=now + 50)
        rest = await store.redispatch(now=now + 1, limit=2, ready_until=now + 50)
        assert (len(first), len(rest)) == (2, 1)
        assert sorted(t.id for t in first + rest) == sorted(t.id for t in ready)

    # -- fencing -----------------------------------------------------------------------------

    @pytest.mark.parametrize("write", ["take_due", "recover", "redispatch"])
    async def test_fenced_write_refuses_an_older_token_and_changes_nothing(
        self, store: TaskStore, clock: Clock, subject: str, write: str
    ) -> None:
        now, name = clock.now(), unique("leader")
        await fenced_write(store, write, now, Fence(name, 5))
        record = await make_fencing_target(store, subject, now, write)
        with pytest.raises(FencedOut):
            await fenced_write(store, write, now + LEASE, Fence(name, 4))
        assert await get_one(store, record.id) == record

    @pytest.mark.parametrize("write", ["take_due", "recover", "redispatch"])
    async def test_fenced_write_accepts_an_equal_or_newer_token(
        self, store: TaskStore, clock: Clock, subject: str, write: str
    ) -> None:
        now, name = clock.now(), unique("leader")
        await fenced_write(store, write, now, Fence(name, 5))
        record = await make_fencing_target(store, subject, now, write)
        assert [t.id for t in await fenced_write(store, write, now + LEASE, Fence(name, 5))] == [
            record.id
        ]
        await fenced_write(store, write, now + LEASE, Fence(name, 6))
        with pytest.raises(FencedOut):
            await fenced_write(store, write, now + LEASE, Fence(name, 5))

    async def test_fence_is_shared_by_every_fenced_write(
        self, store: TaskStore, clock: Clock
    ) -> None:
        now, name = clock.now(), unique("leader")
        await store.take_due(now=now, limit=1, ready_until=now + 1, fence=Fence(name, 7))
        with pytest.raises(FencedOut):
            await store.recover(now=now, limit=1, default_max_attempts=3, fence=Fence(name, 6))
        with pytest.raises(FencedOut):
            await store.redispatch(now=now, limit=1, ready_until=now + 1, fence=Fence(name, 6))

    async def test_fence_tokens_are_compared_per_name_and_none_is_unfenced(
        self, store: TaskStore, clock: Clock
    ) -> None:
        now = clock.now()
        await store.take_due(now=now, limit=1, ready_until=now + 1, fence=Fence(unique("a"), 9))
        other = Fence(unique("b"), 1)
        await store.take_due(now=now, limit=1, ready_until=now + 1, fence=other)
        await store.take_due(now=now, limit=1, ready_until=now + 1)
        await store.recover(now=now, limit=1, default_max_attempts=3)
        await store.redispatch(now=now, limit=1, ready_until=now + 1)

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
        assert created == [Created(first.id, False)], "a key inside its window outlives its task"
        after = now + WINDOW + 1
        await store.prune(finished_before=after, now=after, limit=10)
        fresh = make_task(subject, after, idempotency_key=key)
        assert await store.create([fresh], now=after, idempotency_window=WINDOW) == [
            Created(fresh.id, True)
        ]
        duplicate = make_task(subject, after + 1, idempotency_key=key)
        assert await store.create([duplicate], now=after + 1, idempotency_window=WINDOW) == [
            Created(fresh.id, False)
        ]


# -- helpers -------------------------------------------------------------------------------


async def get_one(store: TaskStore, task_id: str) -> TaskRecord:
    [record] = await store.get([task_id])
    assert record is not None, f"task {task_id} is unknown to the store"
    return record


async def make_running(
    store: TaskStore, subject: str, now: float, owner: str = OWNER, **fields: Any
) -> TaskRecord:
    """A task claimed by ``owner`` at ``now`` with a lease until ``now + LEASE``."""
    task = make_task(subject, now, **fields)
    await store.create([task], now=now, idempotency_window=WINDOW, ready_until=now + LEASE)
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
        next_query = TaskQuery(query.subject, query.states, pages[-1].next_cursor, query.limit)
        pages.append(await store.query(next_query))
    return pages


def own_counts(counts: dict[tuple[str, State], int], prefix: str) -> dict[tuple[str, State], int]:
    return {key: n for key, n in counts.items() if key[0].startswith(prefix + ".")}


def count_of(counts: dict[tuple[str, State], int], subject: str) -> int:
    return sum(n for (name, _), n in counts.items() if name == subject)
