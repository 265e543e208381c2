"""TaskStore checks, part 4: the bounded error history (``atp.core.model.ERROR_HISTORY``)."""

from __future__ import annotations

from atp.core.model import ERROR_HISTORY, AttemptError, State, TaskRecord
from atp.core.ports import Clock, Outcome, TaskStore
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
