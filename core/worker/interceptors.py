"""The execution wrapper: async interceptors the worker chains around each handler call.

An interceptor receives one frozen ``HandlerCall`` and the next step of the chain; it may
act before and after, replace the result, or raise. Plugins contribute interceptors
through the ``atp_interceptors`` hook; the first one is the outermost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from atp.core.handlers import Handler
from atp.core.model import JSON, Task

__all__ = ["CallNext", "HandlerCall", "Interceptor", "chain"]


@dataclass(frozen=True, slots=True)
class HandlerCall:
    """One attempt of one task about to run in one worker."""

    task: Task
    handler: Handler
    worker: str
    timeout: float
    """Seconds this attempt may run."""
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """How the payload is passed to the handler function."""


CallNext = Callable[[HandlerCall], Awaitable[JSON]]


@runtime_checkable
class Interceptor(Protocol):
    """Wraps handler calls: timing, tracing spans, rate limits, logging context."""

    async def execute(self, call: HandlerCall, call_next: CallNext) -> JSON:
        """Run ``call_next(call)`` (or not) and return the handler's result."""
        ...


def chain(interceptors: Sequence[Interceptor], innermost: CallNext) -> CallNext:
    """Compose ``interceptors`` around ``innermost``; the first is the outermost."""
    call_next = innermost
    for interceptor in reversed(interceptors):
        call_next = _bind(interceptor, call_next)
    return call_next


def _bind(interceptor: Interceptor, call_next: CallNext) -> CallNext:
    async def step(call: HandlerCall) -> JSON:
        return await interceptor.execute(call, call_next)

    return step
