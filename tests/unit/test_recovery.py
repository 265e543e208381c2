"""The recover decision every store applies (``atp.core.recovery``)."""

from __future__ import annotations

import pytest

from atp.core.model import AttemptError, State, Task, TaskRecord
from atp.core.recovery import LEASE_EXPIRED, recovered, recovery

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("attempt", "max_attempts", "cancel", "default", "state"),
    [
        (1, None, False, 2, State.SCHEDULED),
        (2, None, False, 2, State.DEAD),
        (1, 1, False, 2, State.DEAD),
        (1, 5, False, 2, State.SCHEDULED),
        (1, 5, True, 2, State.CANCELLED),
        (9, 5, True, 2, State.CANCELLED),
        (1, 1, False, None, State.DEAD),
        (9, None, False, None, State.SCHEDULED),
        (9, None, True, None, State.CANCELLED),
    ],
)
def test_the_next_state(
    attempt: int, max_attempts: int | None, cancel: bool, default: int | None, state: State
) -> None:
    """With no default (the reaper's case: a handler may set its own limit), only the
    task's own max_attempts sends it to DEAD; its next worker decides for the rest."""
    decided = recovery(
        attempt=attempt,
        max_attempts=max_attempts,
        cancel_requested=cancel,
        now=NOW,
        default_max_attempts=default,
    )
    assert decided.state is state
    assert decided.error == AttemptError(attempt, NOW, LEASE_EXPIRED, "lease")
    final = state is not State.SCHEDULED
    assert (decided.run_at, decided.finished_at) == ((None, NOW) if final else (NOW, None))


def test_a_recovered_record_is_scheduled_now_without_a_lease() -> None:
    """Its lease error names the lease owner; when the lost attempt began is unknown."""
    task = Task("t1", "a.b", run_at=NOW - 60, attempt=1)
    running = TaskRecord(task, State.RUNNING, NOW - 60, lease_owner="w1", lease_until=NOW - 1)
    record = recovered(running, NOW, 3)
    assert record == running.replace(
        task=task.replace(run_at=NOW),
        state=State.SCHEDULED,
        updated_at=NOW,
        lease_owner=None,
        lease_until=None,
        errors=(AttemptError(1, NOW, LEASE_EXPIRED, "lease", worker="w1"),),
    )
