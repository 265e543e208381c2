"""TaskStore checks, part 2: running tasks and the leader's writes (heartbeat to fencing)."""

from __future__ import annotations

import pytest

from atp.core.errors import FencedOut
from atp.core.ids import new_id
from atp.core.model import AttemptError, State
from atp.core.ports import Clock, Fence, LeaseStatus, Outcome, TaskStore
from atp.sdk.conformance._store_support import (
    LEASE,
    OTHER,
    OWNER,
    WINDOW,
    fenced_write,
    get_one,
    make_fencing_target,
    make_finished,
    make_in_state,
    make_ready,
    make_running,
)
from atp.sdk.conformance._support import make_task, unique

__all__ = ["RunningChecks"]


class RunningChecks:
    """heartbeat, finish, cancel, recover, redispatch, fencing; part of TaskStoreConformance."""

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

    async def test_finish_dead_with_refund_does_not_count_the_attempt(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now)
        error = AttemptError(attempt=0, at=now + 1, message="attempts spent", kind="lease")
        dead = Outcome(running.id, OWNER, State.DEAD, at=now + 1, error=error, refund=True)
        assert await store.finish([dead]) == [True]
        record = await get_one(store, running.id)
        assert (record.state, record.task.attempt, record.errors) == (State.DEAD, 0, (error,))
        assert record.finished_at == now + 1

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
        ready = await make_ready(store, subject, now)
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

    async def test_recover_cancels_a_task_whose_cancel_was_requested(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now, max_attempts=3)
        await store.cancel([running.id], now=now + 1)
        later = now + LEASE + 1
        [record] = await store.recover(now=later, limit=10, default_max_attempts=3)
        assert (record.id, record.state, record.finished_at) == (
            running.id,
            State.CANCELLED,
            later,
        )
        assert record.last_error is not None
        assert record.last_error.kind == "lease"
        assert await store.take_due(now=later, limit=10, ready_until=later + LEASE) == []

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

    async def test_recover_without_a_default_kills_only_by_the_tasks_own_limit(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        unlimited = await make_running(store, subject, now)
        limited = await make_running(store, subject, now, max_attempts=1)
        later = now + LEASE
        changed = await store.recover(now=later, limit=10, default_max_attempts=None)
        states = {record.id: (record.state, record.task.attempt) for record in changed}
        assert states == {unlimited.id: (State.SCHEDULED, 1), limited.id: (State.DEAD, 1)}

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
