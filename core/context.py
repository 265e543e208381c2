"""The task a handler is running, for code that needs more than the payload."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar

from atp.core.model import Task

__all__ = ["TaskLogFilter", "current_task", "trace_id"]

_current: ContextVar[Task] = ContextVar("atp_current_task")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def current_task() -> Task:
    """Return the envelope of the task the calling handler runs (its id, attempt, headers).

    Raises LookupError outside a handler. Sync handlers see it too: they run in a copy
    of the worker's context.
    """
    return _current.get()


def set_current_task(task: Task) -> None:
    """Set by the worker in each attempt's own asyncio task before calling the handler."""
    _current.set(task)


def trace_id(headers: Mapping[str, str]) -> str | None:
    """The trace id of the W3C ``traceparent`` header, or None if absent or malformed."""
    match = _TRACEPARENT.match(headers.get("traceparent", ""))
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


class TaskLogFilter(logging.Filter):
    """Adds ``task_id``, ``subject``, ``attempt`` and ``trace_id`` to every record.

    They name the task whose attempt logged the line (the worker's own lines about it
    too), and are None outside an attempt; a field the caller set with ``extra=`` is
    kept. Put it on a handler, not a logger, so records of every logger pass through it.
    It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        task = _current.get(None)
        fields = {
            "task_id": task.id if task else None,
            "subject": task.subject if task else None,
            "attempt": task.attempt if task else None,
            "trace_id": trace_id(task.headers) if task else None,
        }
        for name, value in fields.items():
            if not hasattr(record, name):  # a caller's ``extra=`` wins
                setattr(record, name, value)
        return True
