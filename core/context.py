"""The task a handler is running, for code that needs more than the payload."""

from __future__ import annotations

from contextvars import ContextVar

from atp.core.model import Task

__all__ = ["current_task"]

_current: ContextVar[Task] = ContextVar("atp_current_task")


def current_task() -> Task:
    """Return the envelope of the task the calling handler runs (its id, attempt, headers).

    Raises LookupError outside a handler. Sync handlers see it too: they run in a copy
    of the worker's context.
    """
    return _current.get()


def set_current_task(task: Task) -> None:
    """Set by the worker in each attempt's own asyncio task before calling the handler."""
    _current.set(task)
