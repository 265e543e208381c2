"""Workflow definitions: named, versioned DAGs of steps, checked when they are defined.

A definition is plain data with a JSON form (``definition_to_dict``), so a producer in
any language can submit one. ``Definition.check`` (called by ``definition_from_dict`` and
by the SDK's ``Workflow``) rejects duplicate step names, unknown parents and cycles with
InvalidInput, before anything is stored.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.model import JSON
from atp.core.subjects import validate_subject
from atp.core.workflows.conditions import validate_condition

__all__ = [
    "MAX_STEPS",
    "NAME",
    "TIMER_SUBJECT",
    "Definition",
    "Step",
    "StepKind",
    "definition_from_dict",
    "definition_to_dict",
]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
MAX_STEPS = 1000
TIMER_SUBJECT = "atp.workflow.timer"
"""The subject of a sleep step's task: a delayed task whose handler does nothing."""
MAX_DURATION = 10 * 365 * 86400.0


class StepKind(enum.StrEnum):
    """What a step does once all its parents succeeded."""

    TASK = "task"
    """Publish a task to ``subject``; the step succeeds with the task."""
    SIGNAL = "signal"
    """Wait for the signal ``signal`` sent to the run, at most ``timeout`` seconds."""
    SLEEP = "sleep"
    """Wait ``duration`` seconds: a task delayed through the delay queue."""


@dataclass(frozen=True, slots=True)
class Step:
    """One node of a workflow's DAG."""

    name: str
    kind: StepKind = StepKind.TASK
    after: tuple[str, ...] = ()
    """The parents: the step starts once every one of them succeeded."""
    subject: str | None = None
    """TASK: the subject of the step's task."""
    compensate: str | None = None
    """TASK: the subject of the task that undoes this step when a later step fails."""
    when: Mapping[str, Any] | None = None
    """A condition (``atp.core.workflows.conditions``) over the parents' results: the one
    parent's result, a ``{parent: result}`` object for several, the run's input for none.
    False: the step and every step below it are skipped."""
    max_attempts: int | None = None
    """TASK: attempts before the step is dead; None: the handler's or worker's setting."""
    timeout: float | None = None
    """TASK: seconds one attempt may run. SIGNAL: seconds to wait; None waits for ever."""
    signal: str | None = None
    """SIGNAL: the signal's name."""
    duration: float | None = None
    """SLEEP: seconds to wait."""


@dataclass(frozen=True, slots=True)
class Definition:
    """A named, versioned workflow: its steps, in the order they were declared."""

    name: str
    version: int
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        """Return the step named ``name``; InvalidInput if there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise InvalidInput(f"workflow {self.name!r} v{self.version} has no step {name!r}")

    def children(self, name: str) -> list[str]:
        """The steps that list ``name`` among their parents."""
        return [step.name for step in self.steps if name in step.after]

    def order(self) -> list[str]:
        """Step names in a topological order (parents first), declaration order otherwise."""
        placed: dict[str, None] = {}
        pending = list(self.steps)
        while pending:
            ready = [s for s in pending if all(p in placed for p in s.after)]
            if not ready:
                raise InvalidInput(_cycle_message(self.name, pending))
            placed.update(dict.fromkeys(s.name for s in ready))
            pending = [s for s in pending if s.name not in placed]
        return list(placed)

    def check(self) -> Definition:
        """Return self if well formed; InvalidInput naming the first problem otherwise."""
        _check_name(self.name, "workflow name")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise InvalidInput(f"workflow version must be an integer >= 1, got {self.version!r}")
        if not self.steps:
            raise InvalidInput(f"workflow {self.name!r} has no steps")
        if len(self.steps) > MAX_STEPS:
            raise InvalidInput(
                f"workflow {self.name!r} has {len(self.steps)} steps; at most {MAX_STEPS}"
            )
        names = [step.name for step in self.steps]
        for step in self.steps:
            _check_step(step)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInput(f"workflow {self.name!r}: duplicate step names {duplicates}")
        for step in self.steps:
            unknown = [p for p in step.after if p not in names]
            if unknown:
                raise InvalidInput(f"step {step.name!r} comes after unknown steps {unknown}")
        self.order()  # raises for a cycle
        return self


def definition_to_dict(definition: Definition) -> dict[str, Any]:
    """The JSON object of ``definition``; fields left at their default are omitted."""
    return {
        "name": definition.name,
        "version": definition.version,
        "steps": [_step_to_dict(step) for step in definition.steps],
    }


def definition_from_dict(data: JSON) -> Definition:
    """Build and check a definition from its JSON object; InvalidInput for anything wrong."""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"a workflow definition must be a JSON object, got {type(data).__name__}"
        )
    unknown = set(data) - {"name", "version", "steps"}
    if unknown:
        raise InvalidInput(f"unknown workflow definition keys {sorted(unknown)}")
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise InvalidInput(f"workflow 'steps' must be a list, got {steps!r}")
    return Definition(
        name=data.get("name"),  # type: ignore[arg-type]  # checked below
        version=data.get("version"),  # type: ignore[arg-type]
        steps=tuple(_step_from_dict(item) for item in steps),
    ).check()


_STEP_FIELDS = {f.name for f in dataclasses.fields(Step)}


def _step_to_dict(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"name": step.name, "kind": step.kind.value}
    if step.after:
        data["after"] = list(step.after)
    for key in ("subject", "compensate", "when", "max_attempts", "timeout", "signal", "duration"):
        value = getattr(step, key)
        if value is not None:
            data[key] = dict(value) if key == "when" else value
    return data


def _step_from_dict(data: JSON) -> Step:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"a workflow step must be a JSON object, got {data!r}")
    unknown = set(data) - _STEP_FIELDS
    if unknown:
        raise InvalidInput(f"step {data.get('name')!r}: unknown keys {sorted(unknown)}")
    after = data.get("after") or []
    if not isinstance(after, list) or not all(isinstance(p, str) for p in after):
        raise InvalidInput(f"step {data.get('name')!r}: 'after' must be a list of step names")
    try:
        kind = StepKind(data.get("kind", "task"))
    except ValueError:
        given = data.get("kind")
        raise InvalidInput(
            f"step {data.get('name')!r}: kind must be task, signal or sleep, got {given!r}"
        ) from None
    values = {k: v for k, v in data.items() if k not in ("kind", "after")}
    return Step(kind=kind, after=tuple(after), **values)


def _check_step(step: Step) -> None:
    _check_name(step.name, "step name")
    where = f"step {step.name!r}"
    if step.name in step.after:
        raise InvalidInput(f"{where} comes after itself")
    if len(set(step.after)) != len(step.after):
        raise InvalidInput(f"{where} names a parent twice")
    if step.when is not None:
        validate_condition(step.when)
    {StepKind.TASK: _check_task, StepKind.SIGNAL: _check_signal, StepKind.SLEEP: _check_sleep}[
        step.kind
    ](step, where)


def _check_task(step: Step, where: str) -> None:
    _only(step, where, {"subject", "compensate", "max_attempts", "timeout"})
    if step.subject is None:
        raise InvalidInput(f"{where} is a task step without a subject")
    validate_subject(step.subject)
    if step.compensate is not None:
        validate_subject(step.compensate)
    attempts = step.max_attempts
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 1000
    ):
        raise InvalidInput(f"{where}: max_attempts must be 1 to 1000, got {attempts!r}")
    if step.timeout is not None:
        _seconds(step.timeout, f"{where}: timeout")


def _check_signal(step: Step, where: str) -> None:
    _only(step, where, {"signal", "timeout"})
    if step.signal is None:
        raise InvalidInput(f"{where} is a signal step without a signal name")
    _check_name(step.signal, f"{where}: signal name")
    if step.timeout is not None:
        _seconds(step.timeout, f"{where}: timeout")


def _check_sleep(step: Step, where: str) -> None:
    _only(step, where, {"duration"})
    if step.duration is None:
        raise InvalidInput(f"{where} is a sleep step without a duration")
    _seconds(step.duration, f"{where}: duration", zero=True)


def _only(step: Step, where: str, allowed: set[str]) -> None:
    kind_fields = {"subject", "compensate", "max_attempts", "timeout", "signal", "duration"}
    extra = sorted(k for k in kind_fields - allowed if getattr(step, k) is not None)
    if extra:
        raise InvalidInput(f"{where}: a {step.kind.value} step takes no {', '.join(extra)}")


def _seconds(value: object, what: str, *, zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not zero) or value > MAX_DURATION:
        raise InvalidInput(f"{what} must be more than 0 and at most ten years, got {value!r}")


def _check_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} must be 1 to 128 letters, digits, '_', '.', ':' or '-' starting with a "
            f"letter or digit, got {value!r}"
        )


def _cycle_message(workflow: str, pending: Sequence[Step]) -> str:
    names = sorted(step.name for step in pending)
    return f"workflow {workflow!r} has a cycle among steps {names}"
