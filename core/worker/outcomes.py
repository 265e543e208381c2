"""How an attempt's ending becomes an Outcome: success, retry with backoff, or dead."""

from __future__ import annotations

import concurrent.futures
import logging
import random
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from atp.core import codec
from atp.core.context import trace_id
from atp.core.errors import AtpError, Fail, InvalidInput, Retry
from atp.core.handlers import Handler
from atp.core.model import JSON, AttemptError, RetryPolicy, State, Task
from atp.core.ports import Outcome
from atp.core.recovery import LEASE_EXPIRED
from atp.core.settings import Settings

__all__ = ["Policy", "backoff", "format_traceback", "log_failure"]

log = logging.getLogger("atp.worker")

T = TypeVar("T")


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt ``attempt``: full jitter under the ceiling."""
    ceiling = policy.ceiling(attempt)
    return rng.uniform(0.0, ceiling) if policy.jitter else ceiling


def _first(task: T | None, handler: T | None, default: T) -> T:
    """A task's own option wins over its handler's, which wins over the settings'."""
    if task is not None:
        return task
    return handler if handler is not None else default


@dataclass(frozen=True, slots=True)
class Policy:
    """Turns the end of one attempt into the Outcome the store records."""

    settings: Settings
    owner: str
    rng: random.Random

    def max_attempts(self, task: Task, handler: Handler | None) -> int:
        own = handler.max_attempts if handler else None
        return _first(task.max_attempts, own, self.settings.max_attempts)

    def retry_policy(self, task: Task, handler: Handler | None) -> RetryPolicy:
        own = handler.retry if handler else None
        default = RetryPolicy(base=self.settings.retry_base, cap=self.settings.retry_cap)
        return _first(task.retry, own, default)

    def timeout(self, task: Task, handler: Handler | None) -> float:
        own = handler.timeout if handler else None
        return _first(task.timeout, own, self.settings.timeout)

    def success(self, task: Task, result: JSON, now: float) -> Outcome:
        """SUCCEEDED, unless the result cannot be stored: then DEAD, since a retry would
        run the side effects again only to fail the same way."""
        try:
            size = 4 if result is None else len(codec.dumps(result))  # None: b"null"
        except InvalidInput as exc:
            reason = f"handler returned an unserialisable result: {exc}"
            return self._dead(task, now, reason, "unserialisable")
        if size > self.settings.max_payload:
            message = f"result is {size} bytes of JSON, the limit is {self.settings.max_payload}"
            return self._dead(task, now, message, "unserialisable")
        return Outcome(task.id, self.owner, State.SUCCEEDED, now, result=result)

    def failure(
        self,
        task: Task,
        handler: Handler | None,
        exc: BaseException,
        kind: str,
        now: float,
        started: float | None = None,
    ) -> Outcome:
        """Another attempt after a backoff if any are left, else DEAD. ``started``: when
        the handler was called, None if it never was."""
        trace = format_traceback(exc)
        if isinstance(exc, Fail):
            return self._dead(task, now, _text(exc.reason), "fail", trace, started)
        message = _describe(exc)
        if task.attempt >= self.max_attempts(task, handler):
            return self._dead(task, now, message, kind, trace, started)
        delay = exc.delay if isinstance(exc, Retry) and exc.delay is not None else None
        if delay is None:
            delay = backoff(self.retry_policy(task, handler), task.attempt, self.rng)
        error = self._error(task.attempt, now, message, kind, trace, started)
        return Outcome(task.id, self.owner, State.SCHEDULED, now, error=error, run_at=now + delay)

    def spent(self, task: Task, handler: Handler | None, now: float) -> Outcome | None:
        """DEAD before running, when an attempt past ``max_attempts`` was claimed: the
        last ones were lost with their workers (the store's recovery knows a task's own
        ``max_attempts`` but not its handler's). This attempt never ran: it is refunded."""
        limit = self.max_attempts(task, handler)
        if task.attempt <= limit:
            return None
        message = f"{LEASE_EXPIRED}; no attempts left ({limit} of {limit} ran)"
        # the lost attempt ran elsewhere (its lease error names that worker): none here
        error = AttemptError(task.attempt - 1, now, message, "lease")
        return Outcome(task.id, self.owner, State.DEAD, now, error=error, refund=True)

    def invalid(self, task: Task, exc: AtpError, now: float) -> Outcome:
        """DEAD at once: the task itself is malformed, no attempt can succeed."""
        return self._dead(task, now, exc.message, "invalid")

    def cancelled(self, task: Task, now: float, started: float | None = None) -> Outcome:
        error = self._error(
            task.attempt, now, "cancelled while running", "cancelled", None, started
        )
        return Outcome(task.id, self.owner, State.CANCELLED, now, error=error)

    def interrupted(
        self,
        task: Task,
        now: float,
        message: str,
        kind: str,
        delay: float = 0.0,
        started: float | None = None,
    ) -> Outcome:
        """Back to SCHEDULED without counting the attempt (shutdown, no handler here)."""
        error = self._error(task.attempt, now, message, kind, None, started)
        return Outcome(
            task.id, self.owner, State.SCHEDULED, now, error=error, run_at=now + delay, refund=True
        )

    def _dead(
        self,
        task: Task,
        now: float,
        message: str,
        kind: str,
        trace: str | None = None,
        started: float | None = None,
    ) -> Outcome:
        error = self._error(task.attempt, now, message, kind, trace, started)
        return Outcome(task.id, self.owner, State.DEAD, now, error=error)

    def _error(
        self,
        attempt: int,
        now: float,
        message: str,
        kind: str,
        trace: str | None,
        started: float | None,
    ) -> AttemptError:
        """This worker's error for ``attempt``, for the attempt timeline."""
        return AttemptError(attempt, now, message, kind, trace, self.owner, started)


_WORKER_DIR = str(Path(__file__).parent)
_THREAD_POOL_DIR = str(Path(concurrent.futures.__file__).parent)


def handler_frames(exc: BaseException) -> TracebackType | None:
    """``exc``'s traceback from the handler's own first frame: the worker's frames down to
    its call of the handler (``_invoke``), interceptors and a thread pool's are left out.
    All of it when the handler was never called: an interceptor or the worker raised."""
    tb = exc.__traceback__
    while tb is not None and not _is_invoke(tb):
        tb = tb.tb_next
    if tb is None:
        return exc.__traceback__
    tb = tb.tb_next
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_THREAD_POOL_DIR):
        tb = tb.tb_next
    return tb if tb is not None else exc.__traceback__


def _is_invoke(tb: TracebackType) -> bool:
    code = tb.tb_frame.f_code
    return code.co_name == "_invoke" and code.co_filename.startswith(_WORKER_DIR)


def format_traceback(exc: BaseException) -> str | None:
    """The traceback of a raised ``exc`` as stored with its attempt, or None for one
    never raised (a timeout) or a ``Retry``, the handler's own request, not a fault.

    Each exception of a chain keeps its innermost ``TRACEBACK_FRAMES`` frames, and the
    AttemptError cuts the text to its head (the first cause) and tail (the exception
    itself). Whatever a hostile exception raises while being formatted, the attempt is
    still recorded, with what went wrong in place of the traceback."""
    if exc.__traceback__ is None or isinstance(exc, Retry):
        return None
    try:
        found = traceback.TracebackException(
            type(exc), exc, handler_frames(exc), limit=-TRACEBACK_FRAMES, compact=True
        )
        return "".join(found.format())
    except BaseException as failed:  # a __str__ raising SystemExit, a recursion error
        return f"{_UNAVAILABLE}: {type(failed).__name__} while formatting it>"


_UNAVAILABLE = "<traceback unavailable"
_NOT_FAILURES = frozenset({"shutdown", "no-handler", "cancelled"})
"""Error kinds of an attempt that was interrupted, not failed: they are not logged here."""


def log_failure(worker: str, task: Task, outcome: Outcome, raised: BaseException | None) -> None:
    """Log one failed attempt: WARNING when it runs again, ERROR when the task is dead.

    ``raised`` (the handler's exception) goes in the record's ``exc_info`` when its
    traceback was stored, so the log shows what ``atp task get`` shows; the task's
    fields go in ``extra``, as the attempt may have ended before its context was set.
    """
    error = outcome.error
    if error is None or error.kind in _NOT_FAILURES:
        return
    if outcome.state not in (State.SCHEDULED, State.DEAD):
        return
    fields = {
        "task_id": task.id,
        "subject": task.subject,
        "attempt": error.attempt,
        "trace_id": trace_id(task.headers),
        "kind": error.kind,
    }
    exc_info = None
    if raised is not None and error.traceback and not error.traceback.startswith(_UNAVAILABLE):
        exc_info = (type(raised), raised, handler_frames(raised))
    where = f"worker {worker}: task {task.id} ({task.subject})"
    if outcome.state is State.DEAD:
        text = "%s is dead after attempt %d (%s): %s"
        log.error(
            text, where, error.attempt, error.kind, error.message, exc_info=exc_info, extra=fields
        )
        return
    delay = (outcome.run_at or outcome.at) - outcome.at
    text = "%s attempt %d failed (%s), retrying in %.1fs: %s"
    log.warning(
        text,
        where,
        error.attempt,
        error.kind,
        delay,
        error.message,
        exc_info=exc_info,
        extra=fields,
    )


TRACEBACK_FRAMES = 64
"""Frames formatted per exception of a chain at most: a deep recursion keeps its last."""


def _describe(exc: BaseException) -> str:
    """``Type: text``; an exception that is not an ``Exception`` (SystemExit,
    KeyboardInterrupt, a CancelledError of the handler's own) is named as the handler's."""
    if isinstance(exc, Retry):
        return _text(exc.reason)
    text = _text(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described if isinstance(exc, Exception) else f"{described}, raised by the handler"


def _text(value: object) -> str:
    """``str(value)``, or ``<unprintable>`` when its ``__str__`` raises: a hostile
    exception must not keep its attempt from being recorded."""
    try:
        return str(value)
    except BaseException:  # whatever __str__ raises, the outcome is recorded
        return "<unprintable>"
