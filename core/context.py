"""The task a handler is running, for code that needs more than the payload, and the
follow-up tasks it publishes."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Protocol

from atp.core.errors import InvalidInput
from atp.core.model import Task
from atp.core.service import MAX_KEY_LENGTH, Published, PublishRequest

__all__ = [
    "PARENT_HEADER",
    "Attempt",
    "Publisher",
    "TaskLogFilter",
    "current_attempt",
    "current_task",
    "trace_id",
]

PARENT_HEADER = "atp-parent"
"""The header a follow-up carries: the id of the task whose handler published it."""
_TRACE_HEADERS = ("traceparent", "tracestate")
_current: ContextVar[Attempt] = ContextVar("atp_current_attempt")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


class Publisher(Protocol):
    """What an attempt publishes its follow-ups through: the worker's TaskService."""

    @property
    def adds_headers(self) -> bool:
        """Whether plugins add a trace context to every task published."""
        ...

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
        """Accept tasks, as ``TaskService.publish``."""
        ...


@dataclass(eq=False)
class Attempt:
    """One attempt of a task: its envelope, and follow-ups published in its scope.

    A follow-up's idempotency key is derived from the parent task's id: ``<id>:<key>``
    for a request that gives a key, else ``<id>/<n>`` for the n-th follow-up without one
    in this attempt. A retried attempt that publishes the same follow-ups in the same
    order therefore creates none of them twice (within the idempotency window); one that
    publishes other parameters under a key already used gets IdempotencyConflict. Each
    carries ``atp-parent: <id>`` and the parent's trace context, unless a tracing plugin
    sets one from the running attempt's span.
    """

    task: Task
    publisher: Publisher | None = None
    loop: asyncio.AbstractEventLoop | None = None
    thread: int = field(default_factory=threading.get_ident)
    """The loop's thread: a sync handler publishes from another one."""
    published: int = 0
    """Follow-ups without a key published so far: the next one's ordinal, less one."""

    def on_loop(self) -> bool:
        """Whether the caller runs on the worker's loop (an async handler)."""
        return threading.get_ident() == self.thread

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
        """Publish follow-ups from an async handler (on the worker's loop), in one call."""
        if not self.on_loop():
            raise RuntimeError("a sync handler publishes follow-ups with publish_sync()")
        return await self._service().publish(self.follow_ups(requests))

    def publish_sync(self, requests: Sequence[PublishRequest]) -> list[Published]:
        """Publish follow-ups from a sync handler (in a worker thread), blocking until
        the store has them."""
        if self.on_loop() or self.loop is None:
            raise RuntimeError("an async handler publishes follow-ups with await publish()")
        coro = self._service().publish(self.follow_ups(requests))
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def follow_ups(self, requests: Sequence[PublishRequest]) -> list[PublishRequest]:
        """``requests`` in this attempt's scope: derived keys, parent and trace headers."""
        return [self._follow_up(request) for request in requests]

    def _follow_up(self, request: PublishRequest) -> PublishRequest:
        parent = self.task.id
        if request.idempotency_key is None:
            self.published += 1
            key = f"{parent}/{self.published}"
        else:
            key = f"{parent}:{request.idempotency_key}"
        if len(key) > MAX_KEY_LENGTH:
            room = MAX_KEY_LENGTH - len(parent) - 1
            raise InvalidInput(
                f"a follow-up's idempotency key may be at most {room} characters,"
                f" got {len(request.idempotency_key or '')}"
            )
        return replace(request, idempotency_key=key, headers=self._headers(request.headers))

    def _headers(self, given: Mapping[str, str]) -> dict[str, str]:
        headers = {PARENT_HEADER: self.task.id}
        if not self._service().adds_headers:  # no tracing plugin: carry the parent's trace
            headers.update(
                (k, self.task.headers[k]) for k in _TRACE_HEADERS if k in self.task.headers
            )
        headers.update(given)
        return headers

    def _service(self) -> Publisher:
        if self.publisher is None:
            raise RuntimeError("this attempt has no publisher: it is not run by a worker")
        return self.publisher


def current_task() -> Task:
    """Return the envelope of the task the calling handler runs (its id, attempt, headers).

    Raises LookupError outside a handler. Sync handlers see it too: they run in a copy
    of the worker's context.
    """
    return _current.get().task


def current_attempt() -> Attempt:
    """Return the attempt the calling handler runs; LookupError outside a handler."""
    return _current.get()


def set_current_task(task: Task, publisher: Publisher | None = None) -> None:
    """Set by the worker in each attempt's own asyncio task before calling the handler;
    ``publisher`` (the worker's TaskService) publishes the attempt's follow-ups."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # set outside a loop (a test): no sync publishing
        loop = None
    _current.set(Attempt(task, publisher, loop))


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
        attempt = _current.get(None)
        task = attempt.task if attempt else None
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
