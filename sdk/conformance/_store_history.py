"""TaskStore checks, part 4: the bounded error history (``atp.core.model.ERROR_HISTORY``)."""

from __future__ import annotations

from atp.core.model import ERROR_HISTORY, AttemptError, State, TaskRecord
from atp.core.ports import Clock, Outcome, TaskStore
from atp.core.recovery import LEASE_EXPIRED
from atp.sdk.conformance._store_support import LEASE, OWNER, get_one, make_running

__all__ = ["HistoryChecks"]


class HistoryChecks:
    """A record keeps its first error and its newest ``ERROR_HISTORY - 1``, whichever
    write appends (finish or recover); part of TaskStoreConformance."""

    async def test_finish_keeps_the_first_error_and_the_newest(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        failures = ERROR_HISTORY + 9
        now = clock.now()
        running = await make_running(store, subject, now, max_attempts=failures + 10)
        errors = await fail_attempts(store, running, now, failures)
        record = await get_one(store, running.id)
        assert len(record.errors) == ERROR_HISTORY
        assert record.errors == (errors[0], *errors[-(ERROR_HISTORY - 1) :])
        assert (record.state, record.task.attempt) == (State.SCHEDULED, failures)

    async def test_recover_keeps_the_first_error_and_the_newest(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        failures = ERROR_HISTORY + 4
        now = clock.now()
        running = await make_running(store, subject, now, max_attempts=failures + 10)
        errors = await fail_attempts(store, running, now, failures)
        at = now + failures + 1
        await take_back(store, running.id, at)
        [record] = await store.recover(now=at + LEASE, limit=10, default_max_attempts=None)
        assert len(record.errors) == ERROR_HISTORY
        assert record.errors[:-1] == (errors[0], *errors[-(ERROR_HISTORY - 2) :])
        lease = record.errors[-1]
        assert (lease.kind, lease.attempt, lease.at) == ("lease", failures + 1, at + LEASE)
        assert await get_one(store, running.id) == record

    async def test_errors_keep_their_worker_and_start_and_a_lost_lease_names_its_owner(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        running = await make_running(store, subject, now, owner=ODD_OWNER, max_attempts=5)
        failed = AttemptError(1, now + 2, "E: x", "error", "Traceback\n", ODD_OWNER, now + 0.5)
        retry = Outcome(
            running.id, ODD_OWNER, State.SCHEDULED, now + 2, error=failed, run_at=now + 3
        )
        assert await store.finish([retry]) == [True]
        due = await store.take_due(now=now + 3, limit=10, ready_until=now + 3 + LEASE)
        assert [task.id for task in due] == [running.id]
        await store.claim([running.id], owner=ODD_OWNER, now=now + 3, lease_until=now + 4)
        [record] = await store.recover(now=now + 4, limit=10, default_max_attempts=None)
        lost = AttemptError(2, now + 4, LEASE_EXPIRED, "lease", worker=ODD_OWNER)
        assert record.errors == (failed, lost)
        assert (await get_one(store, running.id)).errors == (failed, lost)

    async def test_a_succeeded_task_keeps_the_worker_that_ran_it(
        self, store: TaskStore, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        done = await make_running(store, subject, now, owner=ODD_OWNER)
        dead = await make_running(store, subject, now, owner=ODD_OWNER)
        failed = AttemptError(1, now + 1, "F", "fail", worker=ODD_OWNER, started_at=now)
        outcomes = [
            Outcome(done.id, ODD_OWNER, State.SUCCEEDED, now + 1, result=1),
            Outcome(dead.id, ODD_OWNER, State.DEAD, now + 1, error=failed),
        ]
        assert await store.finish(outcomes) == [True, True]
        succeeded, died = await get_one(store, done.id), await get_one(store, dead.id)
        assert (succeeded.lease_owner, succeeded.lease_until) == (ODD_OWNER, None)
        assert (died.lease_owner, died.lease_until, died.errors) == (None, None, (failed,))


ODD_OWNER = 'host:1:"a\\b/✓'
"""A worker name with what JSON escapes: a store that writes it by hand must quote it."""


async def fail_attempts(
    store: TaskStore, running: TaskRecord, now: float, count: int
) -> list[AttemptError]:
    """Fail ``count`` attempts of ``running`` (claimed at ``now``), each retried at once,
    one second apart; return the errors in order. The history never holds more than
    ``ERROR_HISTORY`` on the way."""
    errors: list[AttemptError] = []
    for attempt in range(1, count + 1):
        at = now + attempt
        if attempt > 1:
            await take_back(store, running.id, at)
        error = tricky_error(attempt, at)
        retry = Outcome(running.id, OWNER, State.SCHEDULED, at=at, error=error, run_at=at)
        assert await store.finish([retry]) == [True], f"attempt {attempt} did not finish"
        errors.append(error)
        kept = (await get_one(store, running.id)).errors
        assert len(kept) == min(attempt, ERROR_HISTORY), f"after attempt {attempt}: {len(kept)}"
    return errors


async def take_back(store: TaskStore, task_id: str, at: float) -> None:
    """Move the SCHEDULED task ``task_id``, due at ``at``, to READY and claim it again."""
    due = await store.take_due(now=at, limit=10, ready_until=at + LEASE)
    assert [task.id for task in due] == [task_id]
    [claim] = await store.claim([task_id], owner=OWNER, now=at, lease_until=at + LEASE)
    assert claim.claimed, f"could not claim {task_id} again: {claim}"


def tricky_error(attempt: int, at: float) -> AttemptError:
    """An error whose text looks like the stored history's own JSON (braces, commas, the
    ``attempt`` key, a trailing backslash), so a store that cuts the history by searching
    its text rather than parsing it is caught cutting in the wrong place."""
    message = f'failure {attempt}: {{"attempt":{attempt}}},{{"attempt":0,"at":{at}}}] ✗'
    traceback = None
    if attempt % 2:
        traceback = f'Traceback:\n  File "a.py"\n}},{{"attempt":{attempt},"x":[1,{{}}]}}\\'
    return AttemptError(attempt, at, message, "error", traceback)
