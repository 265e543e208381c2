"""``App``: where handlers are declared with ``@app.task``. Importing a module does nothing else.

Inside a handler, ``context()`` returns its ``TaskContext``: the task being run and a way
to publish follow-up tasks through the worker, without a client of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, Unpack

from atp.core.context import Attempt, current_attempt
from atp.core.cron.service import define_schedule
from atp.core.durations import parse_duration
from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.flow.breaker import Breaker
from atp.core.handlers import Handler, HandlerRegistry
from atp.core.model import JSON, RetryPolicy, Task
from atp.core.schedules import Misfire, Overlap, Schedule
from atp.core.service import Published, PublishRequest
from atp.core.workflows.definition import TIMER_SUBJECT, Definition, StepKind
from atp.sdk._options import PublishOptions, publish_request
from atp.sdk.workflow import Workflow

__all__ = ["App", "TaskContext", "context"]

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
        breaker: Breaker | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function (async, or sync to run in a thread) for ``subject``.

        ``subject`` may be a pattern (``orders.*``); the most specific one wins. Defaults
        apply when the task itself does not set them: ``max_attempts`` (or ``retries``,
        attempts after the first), ``timeout`` in seconds or as ``"30s"``, ``retry``.
        ``breaker``: a circuit breaker per subject and worker group (``Breaker``): once
        the handler keeps failing, the subject's tasks wait without spending attempts.
        """
        attempts = _attempts(max_attempts, retries)
        seconds = None if timeout is None else parse_duration(timeout, "timeout")
        if seconds is not None and seconds <= 0:
            raise InvalidInput(f"timeout must be > 0, got {timeout!r}")

        def register(fn: F) -> F:
            self.registry.add(Handler(subject, fn, attempts, seconds, retry, breaker))
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


class TaskContext:
    """What a running handler knows about its task, and how it publishes follow-ups.

    Follow-ups go through the worker's own TaskService (no client, no connection of
    their own) in the parent's idempotency scope: each one's key is derived from the
    parent task's id and the request's ``idempotency_key`` (``<id>:<key>``), or, without
    one, from its ordinal among this attempt's keyless follow-ups (``<id>/<n>``). So an
    attempt that fails after publishing and is retried creates none of its follow-ups
    twice, provided it publishes them in the same order with the same parameters (the
    same key with other parameters raises IdempotencyConflict). Each follow-up carries
    ``atp-parent: <parent id>`` and belongs to the parent's trace.

    Async handlers ``await ctx.publish(...)``; sync handlers (run in a worker thread)
    call ``ctx.publish_sync(...)``, which blocks until the store has the tasks. Calling
    the other one raises RuntimeError at once.
    """

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt

    @property
    def task(self) -> Task:
        """The envelope of the task being run."""
        return self._attempt.task

    @property
    def id(self) -> str:
        """The id of the task being run: the parent of its follow-ups."""
        return self._attempt.task.id

    @property
    def attempt(self) -> int:
        """The attempt running, 1 for the first."""
        return self._attempt.task.attempt

    @property
    def headers(self) -> Mapping[str, str]:
        """The task's headers (its ``traceparent`` among them)."""
        return self._attempt.task.headers

    def publish(
        self, subject: str, payload: JSON = None, **options: Unpack[PublishOptions]
    ) -> Awaitable[Published]:
        """Publish one follow-up from an async handler; options as ``Client.publish``."""
        self._on_loop()
        return self._one(publish_request(subject, payload, **options))

    def publish_many(self, requests: Iterable[PublishRequest]) -> Awaitable[list[Published]]:
        """Publish follow-ups (built with ``Client.request`` or ``publish_request``) in one
        call from an async handler."""
        self._on_loop()
        return self._attempt.publish(list(requests))

    def publish_sync(
        self, subject: str, payload: JSON = None, **options: Unpack[PublishOptions]
    ) -> Published:
        """Publish one follow-up from a sync handler; blocks until it is stored."""
        (published,) = self._attempt.publish_sync([publish_request(subject, payload, **options)])
        return published

    def publish_many_sync(self, requests: Iterable[PublishRequest]) -> list[Published]:
        """Publish follow-ups in one call from a sync handler."""
        return self._attempt.publish_sync(list(requests))

    async def _one(self, request: PublishRequest) -> Published:
        (published,) = await self._attempt.publish([request])
        return published

    def _on_loop(self) -> None:
        """Refuse at the call, not when awaited: a sync handler never awaits, and its
        follow-up would be dropped without a word."""
        if self._attempt.loop is not None and not self._attempt.on_loop():
            raise RuntimeError("a sync handler publishes follow-ups with ctx.publish_sync()")

    def __repr__(self) -> str:
        return f"TaskContext(id={self.id!r}, subject={self.task.subject!r}, attempt={self.attempt})"


def context() -> TaskContext:
    """Return the context of the task the calling handler runs (async or sync handler).

    Raises RuntimeError outside a handler run by a worker.
    """
    try:
        return TaskContext(current_attempt())
    except LookupError:
        raise RuntimeError(
            "atp.sdk.context() is only available inside a handler run by a worker"
        ) from None
