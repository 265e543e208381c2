"""The workflow DSL: declare a DAG of steps in Python, checked as you write it.

::

    signup = Workflow("user.signup", version=1)
    create = signup.step("users.create")
    mail = signup.step("mail.welcome", after=create)
    crm = signup.step("crm.sync", after=create, compensate="crm.unsync")
    signup.step("users.activate", after=[mail, crm])              # fan-in

    approval = Workflow("expense.approve", version=1)
    check = approval.step("expense.check")
    wait = approval.wait_signal("manager.decision", after=check, timeout=timedelta(days=3))
    approval.step("expense.pay", after=wait, when=lambda d: d["approved"] == True)

A step's task receives ``{"input": <run input>, "parents": {step: result, ...}}``. A
``when`` condition is JSON (``{"path": "approved", "op": "eq", "value": true}``) or a
lambda over the parents' results made of ``d["key"]`` lookups, comparisons, ``&``, ``|``
and ``~``: the lambda is run once, here, on a recording stand-in and turned into that
JSON, so the condition is stored with the definition and any process, in any language,
evaluates it the same way. A lambda doing anything else is refused at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeAlias

from atp.core import codec
from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.model import JSON
from atp.core.workflows.conditions import validate_condition
from atp.core.workflows.definition import (
    Definition,
    Step,
    StepKind,
    definition_from_dict,
    definition_to_dict,
)

__all__ = ["Condition", "StepRef", "Workflow", "where"]

Duration: TypeAlias = timedelta | float | str
After: TypeAlias = "StepRef | str | Sequence[StepRef | str] | None"


class StepRef(str):
    """A declared step, as ``after=`` takes it: its name."""

    __slots__ = ()


class Workflow:
    """A named, versioned workflow being declared. Every call checks its input at once:
    a duplicate step name or an unknown parent is InvalidInput (a cycle cannot be built)."""

    def __init__(self, name: str, version: int = 1) -> None:
        self._steps: list[Step] = []
        Definition(name, version, (Step("x", subject="x"),)).check()  # the name and version
        self.name = name
        self.version = version

    def step(
        self,
        subject: str,
        *,
        name: str | None = None,
        after: After = None,
        compensate: str | None = None,
        when: Condition | Callable[[Any], Any] | dict[str, Any] | None = None,
        retries: int | None = None,
        timeout: Duration | None = None,
    ) -> StepRef:
        """Add a step that publishes a task to ``subject`` (named after it unless ``name``).

        ``compensate``: the subject of the task that undoes this step if a later one fails.
        ``retries``: attempts after the first; ``timeout``: per attempt.
        """
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
        ):
            raise InvalidInput(f"retries must be an integer >= 0, got {retries!r}")
        return self._add(
            Step(
                name or subject,
                StepKind.TASK,
                self._parents(after),
                subject=subject,
                compensate=compensate,
                when=_condition(when),
                max_attempts=None if retries is None else retries + 1,
                timeout=None if timeout is None else _seconds(timeout, "timeout"),
            )
        )

    def wait_signal(
        self,
        signal: str,
        *,
        name: str | None = None,
        after: After = None,
        timeout: Duration | None = None,
        when: Condition | Callable[[Any], Any] | dict[str, Any] | None = None,
    ) -> StepRef:
        """Add a step that waits for ``signal`` (``Client.signal``); its result is the
        signal's payload. Past ``timeout`` the step fails, and with it the run."""
        return self._add(
            Step(
                name or signal,
                StepKind.SIGNAL,
                self._parents(after),
                when=_condition(when),
                timeout=None if timeout is None else _seconds(timeout, "timeout"),
                signal=signal,
            )
        )

    def sleep(self, duration: Duration, *, name: str | None = None, after: After = None) -> StepRef:
        """Add a step that waits ``duration``: a task delayed through the delay queue."""
        seconds = _seconds(duration, "duration")
        return self._add(
            Step(
                name or f"sleep-{len(self._steps) + 1}",
                StepKind.SLEEP,
                self._parents(after),
                duration=seconds,
            )
        )

    @property
    def definition(self) -> Definition:
        """The checked definition, as the store keeps it."""
        return Definition(self.name, self.version, tuple(self._steps)).check()

    def to_json(self) -> dict[str, Any]:
        """The definition's JSON object, which ``Client.register_workflow`` also accepts."""
        return definition_to_dict(self.definition)

    @classmethod
    def from_json(cls, data: JSON) -> Workflow:
        """A Workflow from a definition's JSON object; InvalidInput if it is malformed."""
        definition = definition_from_dict(data)
        workflow = cls(definition.name, definition.version)
        workflow._steps = list(definition.steps)
        return workflow

    def _add(self, step: Step) -> StepRef:
        if any(existing.name == step.name for existing in self._steps):
            raise InvalidInput(
                f"workflow {self.name!r} has a step named {step.name!r} already; give this one "
                "another name="
            )
        Definition(self.name, self.version, (*self._steps, step)).check()
        self._steps.append(step)
        return StepRef(step.name)

    def _parents(self, after: After) -> tuple[str, ...]:
        if after is None:
            return ()
        items = [after] if isinstance(after, str) else list(after)
        known = {step.name for step in self._steps}
        for item in items:
            if not isinstance(item, str) or item not in known:
                raise InvalidInput(
                    f"after= names {item!r}, which is not a step of {self.name!r} yet"
                )
        return tuple(dict.fromkeys(items))

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, version={self.version}, steps={len(self._steps)})"


# -- conditions ---------------------------------------------------------------------------


class Condition:
    """A condition under construction; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = validate_condition(data)

    def __and__(self, other: object) -> Condition:
        return Condition({"all": [self.data, _as_condition(other).data]})

    def __or__(self, other: object) -> Condition:
        return Condition({"any": [self.data, _as_condition(other).data]})

    def __invert__(self) -> Condition:
        return Condition({"not": self.data})

    def __bool__(self) -> bool:
        raise InvalidInput(_NO_BOOL)

    def __repr__(self) -> str:
        return f"Condition({self.data!r})"


class _Path:
    """A value inside the parents' results, as a condition lambda sees it."""

    __slots__ = ("path",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, path: str = "") -> None:
        self.path = path

    def __getitem__(self, key: str | int) -> _Path:
        if isinstance(key, bool) or not isinstance(key, str | int) or "." in str(key):
            raise InvalidInput(f"a condition looks up keys and list indexes, got {key!r}")
        return _Path(f"{self.path}.{key}" if self.path else str(key))

    def _compare(self, op: str, value: object) -> Condition:
        codec.dumps(value)  # InvalidInput if it is not JSON
        return Condition({"path": self.path, "op": op, "value": value})

    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        return self._compare("eq", value)

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return self._compare("ne", value)

    def __gt__(self, value: object) -> Condition:
        return self._compare("gt", value)

    def __ge__(self, value: object) -> Condition:
        return self._compare("ge", value)

    def __lt__(self, value: object) -> Condition:
        return self._compare("lt", value)

    def __le__(self, value: object) -> Condition:
        return self._compare("le", value)

    def is_in(self, values: Sequence[JSON]) -> Condition:
        """The value is one of ``values``."""
        return self._compare("in", list(values))

    def contains(self, value: JSON) -> Condition:
        """The value (a list or a string) holds ``value``."""
        return self._compare("contains", value)

    def exists(self) -> Condition:
        return Condition({"path": self.path, "op": "exists"})

    def truthy(self) -> Condition:
        return Condition({"path": self.path, "op": "truthy"})

    def __and__(self, other: object) -> Condition:
        return self.truthy() & other

    def __or__(self, other: object) -> Condition:
        return self.truthy() | other

    def __invert__(self) -> Condition:
        return Condition({"path": self.path, "op": "falsy"})

    def __bool__(self) -> bool:
        raise InvalidInput(_NO_BOOL)


def where(path: str = "") -> _Path:
    """The value at a dotted ``path`` of the parents' results: ``where("approved") == True``."""
    return _Path(path)


_NO_BOOL = (
    "a workflow condition is turned into JSON, so it cannot use 'and', 'or', 'not', 'if' or "
    "'in': write &, |, ~, .is_in([...]) or .contains(x) (with parentheses around comparisons)"
)


def _as_condition(value: object) -> Condition:
    if isinstance(value, Condition):
        return value
    if isinstance(value, _Path):
        return value.truthy()
    raise InvalidInput(f"a condition combines with conditions only, got {value!r}")


def _condition(
    when: Condition | Callable[[Any], Any] | dict[str, Any] | None,
) -> dict[str, Any] | None:
    if when is None:
        return None
    if isinstance(when, Condition | _Path):
        return _as_condition(when).data
    if isinstance(when, dict):
        return validate_condition(when)
    if callable(when):
        return _traced(when)
    raise InvalidInput(f"when= takes a condition, a JSON object or a lambda, got {when!r}")


def _traced(fn: Callable[[Any], Any]) -> dict[str, Any]:
    try:
        value = fn(_Path())
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"the when= lambda cannot be turned into a JSON condition ({type(exc).__name__}: "
            f"{exc}); use d['key'] lookups, comparisons, &, | and ~, or a JSON condition"
        ) from exc
    return _as_condition(value).data


def _seconds(value: Duration, what: str) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return parse_duration(value, what)
