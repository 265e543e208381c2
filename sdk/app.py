"""``App``: where handlers are declared with ``@app.task``. Importing a module does nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from atp.core.cron.service import define_schedule
from atp.core.durations import parse_duration
from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.handlers import Handler, HandlerRegistry
from atp.core.model import JSON, RetryPolicy
from atp.core.schedules import Misfire, Overlap, Schedule
from atp.core.workflows.definition import TIMER_SUBJECT, Definition, StepKind
from atp.sdk.workflow import Workflow

__all__ = ["App"]

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """A set of handlers, explicit and self-contained: no global registry.

    >>> app = App()
    >>> @app.task("orders.close", max_attempts=5, timeout=30)
    ... async def close_order(order_id: int) -> None: ...
    """

    def __init__(self, name: str = "atp") -> None:
        self.name = name
        self.registry = HandlerRegistry()
        self.schedules: dict[str, Schedule] = {}
        """The cron schedules declared with ``@app.cron``, by name."""
        self.workflows: dict[tuple[str, int], Definition] = {}
        """The workflows declared with ``app.workflow``, by (name, version)."""

    def task(
        self,
        subject: str,
        *,
        max_attempts: int | None = None,
        retries: int | None = None,
        timeout: float | str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function (async, or sync to run in a thread) for ``subject``.

        ``subject`` may be a pattern (``orders.*``); the most specific one wins. Defaults
        apply when the task itself does not set them: ``max_attempts`` (or ``retries``,
        attempts after the first), ``timeout`` in seconds or as ``"30s"``, ``retry``.
        """
        attempts = _attempts(max_attempts, retries)
        seconds = None if timeout is None else parse_duration(timeout, "timeout")
        if seconds is not None and seconds <= 0:
            raise InvalidInput(f"timeout must be > 0, got {timeout!r}")

        def register(fn: F) -> F:
            self.registry.add(Handler(subject, fn, attempts, seconds, retry))
            return fn

        return register

    def cron(
        self,
        expression: str,
        *,
        subject: str,
        name: str | None = None,
        tz: str = "UTC",
        payload: JSON = None,
        misfire: Misfire | str = Misfire.ONCE,
        overlap: Overlap | str = Overlap.ALLOW,
    ) -> Callable[[F], F]:
        """Declare a cron schedule publishing ``payload`` to ``subject`` at every tick.

        ``expression`` has five fields, six with seconds first, or is a macro such as
        ``@hourly``; it is read in the IANA time zone ``tz``. ``name`` defaults to the
        subject. The decorated function also handles ``subject`` unless a handler for
        exactly that subject is registered already. ``atp worker`` and ``atp dev``
        store the app's schedules when they start (created, or updated where changed;
        a paused schedule stays paused). Bad input raises InvalidInput at once.
        """
        schedule = define_schedule(
            name or subject,
            expression,
            subject,
            payload=payload,
            tz=tz,
            misfire=misfire,
            overlap=overlap,
        )
        if schedule.name in self.schedules:
            raise AlreadyExists(f"this app declares a schedule named {schedule.name!r} already")

        def register(fn: F) -> F:
            if subject not in self.registry.patterns():
                self.registry.add(Handler(subject, fn))
            self.schedules[schedule.name] = schedule
            return fn

        return register

    def workflow(self, workflow: Workflow) -> Workflow:
        """Declare ``workflow``: ``atp worker``, ``atp dev`` and ``TestPlatform`` register it
        when they start; if it has sleep steps, this app's workers also run their timer
        tasks (``atp.workflow.timer``). Its step handlers are ordinary ``@app.task``
        handlers. Returns ``workflow``."""
        definition = workflow.definition
        key = (definition.name, definition.version)
        if key in self.workflows and self.workflows[key] != definition:
            raise AlreadyExists(f"this app declares workflow {key[0]!r} v{key[1]} already")
        self.workflows[key] = definition
        sleeps = any(step.kind is StepKind.SLEEP for step in definition.steps)
        if sleeps and TIMER_SUBJECT not in self.registry.patterns():
            self.registry.add(Handler(TIMER_SUBJECT, _timer_elapsed))
        return workflow

    def __repr__(self) -> str:
        return f"App({self.name!r}, subjects={self.registry.patterns()!r})"


def _attempts(max_attempts: int | None, retries: int | None) -> int | None:
    if max_attempts is not None and retries is not None:
        raise InvalidInput("give max_attempts or retries, not both")
    value = retries + 1 if retries is not None else max_attempts
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInput(f"max_attempts must be an integer >= 1, got {value!r}")
    return value


async def _timer_elapsed() -> None:
    """A sleep step's task: the delay queue did the waiting; finishing ends the step."""
