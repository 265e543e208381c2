"""Handlers: what a worker runs for a subject, and how a payload is passed to it."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.flow.breaker import Breaker
from atp.core.model import JSON, RetryPolicy, Task
from atp.core.subjects import compile_pattern, validate_pattern

__all__ = ["Handler", "HandlerRegistry"]


@dataclass(frozen=True)
class Handler:
    """A function registered for a subject pattern, with its per-task defaults."""

    pattern: str
    fn: Callable[..., Any]
    max_attempts: int | None = None
    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: Breaker | None = None
    """Its circuit breaker's policy (ADR 0040), None for none."""

    @functools.cached_property
    def is_async(self) -> bool:
        return asyncio.iscoroutinefunction(self.fn)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    def arguments(self, task: Task) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Return how ``task.payload`` is passed to the function.

        An object is passed as keyword arguments (``{"order_id": 42}`` ->
        ``fn(order_id=42)``), unless the function's only parameter is called ``payload``:
        then it gets the whole object. Any other value is the one positional argument;
        ``None`` to a function without required parameters is passed as nothing. Raises
        InvalidInput when the payload does not fit, so a malformed task goes to the
        dead-letter state instead of being retried.
        """
        payload: JSON = task.payload
        args: tuple[Any, ...]
        kwargs: dict[str, Any]
        if self._wants_whole_payload:
            args, kwargs = (payload,), {}
        elif isinstance(payload, Mapping):
            args, kwargs = (), dict(payload)
        elif payload is None and not self._requires_argument:
            args, kwargs = (), {}
        else:
            args, kwargs = (payload,), {}
        shape = (len(args), *kwargs)
        if shape not in self._fitting:
            try:
                self.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise InvalidInput(f"payload does not fit handler {_name(self.fn)}: {exc}") from exc
            self._fitting.add(shape)
        return args, kwargs

    @functools.cached_property
    def _fitting(self) -> set[tuple[object, ...]]:
        """Argument shapes (positional count, keyword names) known to bind: binding is
        slow, and a subject's payloads nearly always share one shape."""
        return set()

    @functools.cached_property
    def _wants_whole_payload(self) -> bool:
        params = list(self.signature.parameters.values())
        return len(params) == 1 and params[0].name == "payload"

    @functools.cached_property
    def _requires_argument(self) -> bool:
        return any(
            p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            for p in self.signature.parameters.values()
        )


class HandlerRegistry:
    """Handlers by subject pattern; the most specific registered pattern wins a subject."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._resolved: dict[str, Handler | None] = {}

    def add(self, handler: Handler) -> None:
        """Register ``handler``; AlreadyExists if its pattern has one."""
        validate_pattern(handler.pattern)
        if handler.pattern in self._handlers:
            raise AlreadyExists(f"a handler for {handler.pattern!r} is registered already")
        self._handlers[handler.pattern] = handler
        self._resolved.clear()

    def resolve(self, subject: str) -> Handler | None:
        """Return the handler for ``subject``: an exact match, else the longest pattern."""
        if subject not in self._resolved:
            self._resolved[subject] = self._find(subject)
        return self._resolved[subject]

    def patterns(self) -> list[str]:
        """Every registered pattern, in registration order."""
        return list(self._handlers)

    def __iter__(self) -> Iterator[Handler]:
        return iter(self._handlers.values())

    def __len__(self) -> int:
        return len(self._handlers)

    def _find(self, subject: str) -> Handler | None:
        exact = self._handlers.get(subject)
        if exact is not None:
            return exact
        candidates = [h for p, h in self._handlers.items() if compile_pattern(p)(subject)]
        return max(candidates, key=_specificity, default=None)


def _specificity(handler: Handler) -> tuple[int, int]:
    tokens = handler.pattern.split(".")
    literal = sum(token not in ("*", ">") for token in tokens)
    return literal, -tokens.count(">")


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))
