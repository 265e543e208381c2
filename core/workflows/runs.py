"""Workflow runs as the WorkflowStore keeps them, and their JSON form.

A ``Run`` is one execution of one definition version: its input, the state of each
step, the signals received and when the scheduler should look at it next. ``revision``
grows on every write, so every change is a compare-and-set (``WorkflowStore.update_runs``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.model import JSON

__all__ = [
    "ACTIVE_RUN_STATES",
    "FINAL_STEP_STATES",
    "Run",
    "RunPage",
    "RunQuery",
    "RunState",
    "StepRun",
    "StepState",
    "run_from_dict",
    "run_to_dict",
]


class RunState(enum.StrEnum):
    """RUNNING -> SUCCEEDED | COMPENSATING -> FAILED; RUNNING | COMPENSATING -> CANCELLED."""

    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    """A step failed: running steps are being cancelled and succeeded ones undone."""
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


ACTIVE_RUN_STATES = frozenset({RunState.RUNNING, RunState.COMPENSATING})


class StepState(enum.StrEnum):
    """PENDING -> ACTIVE -> SUCCEEDED | FAILED | CANCELLED; PENDING -> SKIPPED | CANCELLED."""

    PENDING = "PENDING"
    """Waiting for its parents."""
    ACTIVE = "ACTIVE"
    """Its task is enqueued, or it waits for its signal or timer."""
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    """Its condition was false, or a parent was skipped."""
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


FINAL_STEP_STATES = frozenset(
    {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED}
)


@dataclass(frozen=True, slots=True)
class StepRun:
    """The state of one step in one run."""

    state: StepState = StepState.PENDING
    task_id: str | None = None
    """TASK and SLEEP: the id of the step's task once enqueued."""
    attempts: int = 0
    result: JSON = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    """SIGNAL: when the wait times out."""
    compensation: StepState | None = None
    """None: not compensated (yet); ACTIVE, SUCCEEDED or FAILED once started."""
    compensation_task: str | None = None

    def replace(self, **changes: Any) -> StepRun:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Run:
    """One run of one workflow definition version."""

    id: str
    workflow: str
    version: int
    """The definition version the run started with; it keeps it to the end."""
    state: RunState = RunState.RUNNING
    input: JSON = None
    steps: Mapping[str, StepRun] = field(default_factory=dict)
    signals: Mapping[str, JSON] = field(default_factory=dict)
    """Every signal received, by name: those that arrived before their step waited too."""
    result: JSON = None
    """SUCCEEDED: the results of the steps no other step comes after, by step name."""
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    wake_at: float | None = None
    """When the scheduler's sweep looks at this run next (a timeout, or a check on its
    running tasks); None once nothing can change it without an outside event."""
    revision: int = 0
    """0 for a run not stored yet; the store adds one on every write."""

    def replace(self, **changes: Any) -> Run:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def finished(self) -> bool:
        return self.state not in ACTIVE_RUN_STATES

    @property
    def due_at(self) -> float | None:
        """When the sweep looks at this run: ``wake_at`` while active, else None."""
        return None if self.finished else self.wake_at


@dataclass(frozen=True, slots=True)
class RunQuery:
    """A filter for listing runs, newest first, with cursor paging."""

    workflow: str | None = None
    states: frozenset[RunState] | None = None
    cursor: str | None = None
    """The ``next_cursor`` of the previous page."""
    limit: int = 100

    def matches(self, run: Run) -> bool:
        """Whether ``run`` passes the filter (the cursor and limit aside)."""
        if self.workflow is not None and run.workflow != self.workflow:
            return False
        return self.states is None or run.state in self.states


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs; ``next_cursor`` is None on the last page."""

    items: list[Run]
    next_cursor: str | None


_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(Run))


def run_to_dict(run: Run) -> dict[str, Any]:
    """The JSON object of ``run`` (every field; enums as their values)."""
    data = {f: getattr(run, f) for f in _RUN_FIELDS}
    data["state"] = run.state.value
    data["steps"] = {name: _step_to_dict(step) for name, step in run.steps.items()}
    data["signals"] = dict(run.signals)
    return data


def run_from_dict(data: Mapping[str, Any]) -> Run:
    """Rebuild a run from ``run_to_dict``; unknown keys are ignored (a newer atp wrote them)."""
    try:
        values = {key: value for key, value in data.items() if key in _RUN_FIELDS}
        values["state"] = RunState(values["state"])
        values["steps"] = {name: _step_from_dict(s) for name, s in values["steps"].items()}
        return Run(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"not a stored workflow run: {exc!r}") from exc


def _step_to_dict(step: StepRun) -> dict[str, Any]:
    return {
        "state": step.state.value,
        "task_id": step.task_id,
        "attempts": step.attempts,
        "result": step.result,
        "error": step.error,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "deadline": step.deadline,
        "compensation": None if step.compensation is None else step.compensation.value,
        "compensation_task": step.compensation_task,
    }


def _step_from_dict(data: Mapping[str, Any]) -> StepRun:
    """Field by field: a run of a thousand steps is read on every advance."""
    compensation = data.get("compensation")
    return StepRun(
        state=StepState(data["state"]),
        task_id=data.get("task_id"),
        attempts=data.get("attempts", 0),
        result=data.get("result"),
        error=data.get("error"),
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
        deadline=data.get("deadline"),
        compensation=None if compensation is None else StepState(compensation),
        compensation_task=data.get("compensation_task"),
    )
