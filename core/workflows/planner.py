"""The pure heart of the engine: from a run, its definition and its tasks' records, what next.

``plan`` reads nothing and writes nothing. It returns the run as it should be stored and
the tasks to publish and cancel; the engine publishes (idempotently, keyed by run and
step), fills in the task ids, and writes the run with a compare-and-set. Two processes
planning from the same revision plan the same tasks under the same keys, and only one of
their writes lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from atp.core import codec
from atp.core.model import JSON, State, TaskRecord
from atp.core.settings import Settings
from atp.core.workflows.conditions import evaluate
from atp.core.workflows.definition import TIMER_SUBJECT, Definition, Step, StepKind
from atp.core.workflows.runs import Run, RunState, StepRun, StepState

__all__ = ["RECHECK", "Plan", "StepTask", "plan", "step_key"]

RECHECK = 10.0
"""Seconds between the sweep's looks at a run whose tasks are running: how soon a step
whose worker died between recording its outcome and advancing the run is noticed."""


def step_key(run_id: str, step: str, compensation: bool = False) -> str:
    """The idempotency key of a step's task (or its compensation): one task per step."""
    return f"wf:{run_id}:{step}:undo" if compensation else f"wf:{run_id}:{step}"


@dataclass(frozen=True, slots=True)
class StepTask:
    """A task the engine must publish for a step (or its compensation)."""

    step: str
    subject: str
    payload: JSON
    compensation: bool = False
    delay: float | None = None
    max_attempts: int | None = None
    timeout: float | None = None


@dataclass(slots=True)
class Plan:
    """What one look at a run decided."""

    run: Run
    publish: list[StepTask] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    """Task ids to cancel (the running steps of a failing run)."""
    finished: list[tuple[str, StepState]] = field(default_factory=list)
    """Steps that reached a final state, for ``atp_workflow_step_finished``."""


def plan(
    definition: Definition,
    run: Run,
    records: Mapping[str, TaskRecord],
    now: float,
    settings: Settings,
) -> Plan:
    """Decide the next state of ``run``; ``records`` holds its active tasks' records (a
    task missing from it was deleted).

    ``settings`` gives the limits a planned task must keep (``max_payload``, ``max_delay``):
    a step whose task would break one fails, with the reason, instead of being published.
    """
    p = _Planner(definition, run, records, now, settings)
    p.absorb()
    if p.state is RunState.RUNNING:
        p.start_ready()
    if p.state is RunState.COMPENSATING:
        p.compensate()
    return p.result()


class _Planner:
    def __init__(
        self,
        definition: Definition,
        run: Run,
        records: Mapping[str, TaskRecord],
        now: float,
        settings: Settings,
    ) -> None:
        self.d = definition
        self.run = run
        self.records = records
        self.now = now
        self.max_payload = settings.max_payload
        self.max_delay = settings.max_delay
        self.steps: dict[str, StepRun] = dict(run.steps)
        self.state = run.state
        self.error = run.error
        self.out = Plan(run)
        self.specs = {step.name: step for step in definition.steps}
        self.order = definition.order()

    # -- finished tasks, signals and timeouts ------------------------------------------

    def absorb(self) -> None:
        for name, step in list(self.steps.items()):
            if step.state is StepState.ACTIVE:
                self._absorb_step(self.specs[name], step)
            if step.compensation is StepState.ACTIVE:
                self._absorb_compensation(name, self.steps[name])

    def _absorb_step(self, spec: Step, step: StepRun) -> None:
        if spec.kind is StepKind.SIGNAL:
            signal = spec.signal or ""
            if signal in self.run.signals:
                self._finish(spec.name, StepState.SUCCEEDED, result=self.run.signals[signal])
            elif step.deadline is not None and step.deadline <= self.now:
                self._finish(spec.name, StepState.FAILED, error=f"signal {spec.signal!r} timed out")
            return
        record = self.records.get(step.task_id or "")
        if record is None:  # purged from the dead letters, say: it can never finish
            self._finish(spec.name, StepState.FAILED, error=f"task {step.task_id} was deleted")
            return
        if record.state not in _TASK_FINAL:
            return
        attempts = record.task.attempt
        if record.state is State.SUCCEEDED:
            self._finish(spec.name, StepState.SUCCEEDED, result=record.result, attempts=attempts)
        elif record.state is State.DEAD:
            error = record.last_error.message if record.last_error else "task is dead"
            self._finish(spec.name, StepState.FAILED, error=error, attempts=attempts)
        else:
            self._finish(spec.name, StepState.CANCELLED, error="task cancelled", attempts=attempts)

    def _absorb_compensation(self, name: str, step: StepRun) -> None:
        record = self.records.get(step.compensation_task or "")
        if record is not None and record.state not in _TASK_FINAL:
            return
        succeeded = record is not None and record.state is State.SUCCEEDED
        done = StepState.SUCCEEDED if succeeded else StepState.FAILED
        self.steps[name] = step.replace(compensation=done)
        if done is StepState.FAILED:
            self.error = f"{self.error}; compensation of step {name!r} failed"

    def _finish(
        self,
        name: str,
        state: StepState,
        *,
        result: JSON = None,
        error: str | None = None,
        attempts: int | None = None,
    ) -> None:
        step = self.steps[name]
        self.steps[name] = step.replace(
            state=state,
            result=result,
            error=error,
            finished_at=self.now,
            attempts=step.attempts if attempts is None else attempts,
            deadline=None,
        )
        self.out.finished.append((name, state))
        if state in (StepState.FAILED, StepState.CANCELLED) and self.state is RunState.RUNNING:
            self.state = RunState.COMPENSATING
            self.error = f"step {name!r} {state.value.lower()}: {error}"

    # -- starting steps ----------------------------------------------------------------

    def start_ready(self) -> None:
        changed = True
        while changed and self.state is RunState.RUNNING:
            changed = False
            for name in self.order:
                if self.state is not RunState.RUNNING:
                    break
                if self.steps[name].state is StepState.PENDING and self._parents_final(name):
                    self._start(self.specs[name])
                    changed = True
        if self.state is RunState.RUNNING and all(
            s.state in (StepState.SUCCEEDED, StepState.SKIPPED) for s in self.steps.values()
        ):
            self.state = RunState.SUCCEEDED

    def _parents_final(self, name: str) -> bool:
        parents = self.specs[name].after
        return all(self.steps[p].state in (StepState.SUCCEEDED, StepState.SKIPPED) for p in parents)

    def _start(self, spec: Step) -> None:
        if any(self.steps[p].state is StepState.SKIPPED for p in spec.after):
            self._finish(spec.name, StepState.SKIPPED)
            return
        if spec.when is not None and not evaluate(spec.when, self._condition_value(spec)):
            self._finish(spec.name, StepState.SKIPPED)
            return
        step = self.steps[spec.name].replace(state=StepState.ACTIVE, started_at=self.now)
        self.steps[spec.name] = step
        if spec.kind is StepKind.SIGNAL:
            deadline = None if spec.timeout is None else self.now + spec.timeout
            self.steps[spec.name] = step.replace(deadline=deadline)
            self._absorb_step(spec, self.steps[spec.name])  # it may have arrived already
        elif spec.kind is StepKind.SLEEP:
            self._publish_timer(spec)
        else:
            self._publish_task(spec)

    def _publish_timer(self, spec: Step) -> None:
        duration = spec.duration or 0.0
        if duration > self.max_delay:
            error = f"sleeping {duration:g}s is over the {self.max_delay:g}s max_delay"
            self._finish(spec.name, StepState.FAILED, error=error)
            return
        self.out.publish.append(StepTask(spec.name, TIMER_SUBJECT, None, delay=duration))

    def _publish_task(self, spec: Step) -> None:
        assert spec.subject is not None
        payload = {
            "input": self.run.input,
            "parents": {p: self.steps[p].result for p in spec.after},
        }
        size = len(codec.dumps(payload))
        if size > self.max_payload:
            self._finish(
                spec.name,
                StepState.FAILED,
                error=(
                    f"the step's input (run input and parents' results) is {size} bytes of JSON, "
                    f"over the {self.max_payload}-byte payload limit"
                ),
            )
            return
        task = StepTask(
            spec.name, spec.subject, payload, max_attempts=spec.max_attempts, timeout=spec.timeout
        )
        self.out.publish.append(task)

    def _condition_value(self, spec: Step) -> JSON:
        if not spec.after:
            return self.run.input
        if len(spec.after) == 1:
            return self.steps[spec.after[0]].result
        return {p: self.steps[p].result for p in spec.after}

    # -- failing: cancel what runs, then undo what succeeded, newest first -------------

    def compensate(self) -> None:
        waiting = False
        for name, step in self.steps.items():
            if step.state is StepState.PENDING:
                self._finish(name, StepState.CANCELLED)
            elif step.state is StepState.ACTIVE and step.task_id is None:
                # a signal wait, or a task this very plan was about to publish
                self.out.publish = [t for t in self.out.publish if t.step != name or t.compensation]
                self._finish(name, StepState.CANCELLED)
            elif step.state is StepState.ACTIVE:
                self.out.cancel.append(step.task_id)  # type: ignore[arg-type]
                waiting = True
        if waiting:
            return
        for name in self._undo_order():
            step = self.steps[name]
            if step.compensation is StepState.ACTIVE:
                return
            if step.compensation is None:
                self._start_compensation(name, step)
                return
        self.state = RunState.FAILED

    def _undo_order(self) -> list[str]:
        order = self.order
        done = [
            n
            for n in order
            if self.steps[n].state is StepState.SUCCEEDED and self.specs[n].compensate is not None
        ]
        return sorted(
            done, key=lambda n: (self.steps[n].finished_at or 0.0, order.index(n)), reverse=True
        )

    def _start_compensation(self, name: str, step: StepRun) -> None:
        spec = self.specs[name]
        assert spec.compensate is not None
        payload = {"input": self.run.input, "step": name, "result": step.result}
        if len(codec.dumps(payload)) > self.max_payload:  # too large: the result without the input
            payload["input"] = None
        self.steps[name] = step.replace(compensation=StepState.ACTIVE)
        self.out.publish.append(StepTask(name, spec.compensate, payload, compensation=True))

    # -- the result --------------------------------------------------------------------

    def result(self) -> Plan:
        final = self.state not in (RunState.RUNNING, RunState.COMPENSATING)
        changes: dict[str, object] = {
            "steps": self.steps,
            "state": self.state,
            "error": self.error,
            "wake_at": None if final else self._wake_at(),
        }
        if final and not self.run.finished:
            changes["finished_at"] = self.now
            if self.state is RunState.SUCCEEDED:
                changes["result"] = self._leaf_results()
        self.out.run = self.run.replace(**changes)
        return self.out

    def _wake_at(self) -> float | None:
        times = [s.deadline for s in self.steps.values() if s.deadline is not None]
        busy = any(
            (s.state is StepState.ACTIVE and s.task_id is not None)
            or s.compensation is StepState.ACTIVE
            for s in self.steps.values()
        )
        if busy or self.out.publish:
            previous = self.run.wake_at
            times.append(
                previous if previous is not None and previous > self.now else self.now + RECHECK
            )
        return min(times, default=None)

    def _leaf_results(self) -> dict[str, JSON]:
        leaves = [s.name for s in self.d.steps if not self.d.children(s.name)]
        return {
            n: self.steps[n].result for n in leaves if self.steps[n].state is StepState.SUCCEEDED
        }


_TASK_FINAL = frozenset({State.SUCCEEDED, State.DEAD, State.CANCELLED})
