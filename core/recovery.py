"""The recover decision: what taking back an expired lease does to its task.

Written once here and called by every store (``TaskStore.recover``). The Redis store keeps
the same rule in ``recover.lua`` for atomicity; its script test compares the two.

A store knows a task's own ``max_attempts`` but not its handler's, which the worker
resolves: where no limit is known the task goes back to SCHEDULED, and the worker that
claims it next sends it to DEAD, unrun, if its attempts are spent (``Policy.spent``).
"""

from __future__ import annotations

from dataclasses import dataclass

from atp.core.model import AttemptError, State, TaskRecord

__all__ = ["LEASE_EXPIRED", "Recovery", "recovered", "recovery"]

LEASE_EXPIRED = "lease expired: the worker stopped renewing it"
"""The message of the ``lease`` error a recovered task gets."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """The next state of a RUNNING task whose lease expired, and what changes with it."""

    state: State
    """SCHEDULED again, CANCELLED (a cancel was requested) or DEAD (attempts spent)."""
    run_at: float | None
    """SCHEDULED: when it runs again (now); None when it keeps its ``run_at``."""
    finished_at: float | None
    """CANCELLED or DEAD: now; None for SCHEDULED."""
    error: AttemptError
    """Appended to the task's error history."""


def recovery(
    *,
    attempt: int,
    max_attempts: int | None,
    cancel_requested: bool,
    now: float,
    default_max_attempts: int | None,
    worker: str | None = None,
) -> Recovery:
    """Decide what recovering a task at ``attempt`` does; pure. ``default_max_attempts``
    is the limit of a task without its own, None where the caller cannot know it;
    ``worker`` is the lease owner that lost the attempt (when it began is not known)."""
    error = AttemptError(attempt, now, LEASE_EXPIRED, "lease", worker=worker)
    limit = default_max_attempts if max_attempts is None else max_attempts
    if cancel_requested:
        return Recovery(State.CANCELLED, None, now, error)
    if limit is not None and attempt >= limit:
        return Recovery(State.DEAD, None, now, error)
    return Recovery(State.SCHEDULED, now, None, error)


def recovered(record: TaskRecord, now: float, default_max_attempts: int | None) -> TaskRecord:
    """The record after ``recovery`` was applied to it (lease cleared)."""
    task = record.task
    decided = recovery(
        attempt=task.attempt,
        max_attempts=task.max_attempts,
        cancel_requested=record.cancel_requested,
        now=now,
        default_max_attempts=default_max_attempts,
        worker=record.lease_owner,
    )
    if decided.run_at is not None:
        task = task.replace(run_at=decided.run_at)
    return record.replace(
        task=task,
        state=decided.state,
        finished_at=decided.finished_at,
        errors=record.with_error(decided.error),
        updated_at=now,
        lease_owner=None,
        lease_until=None,
    )
