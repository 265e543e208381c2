"""Handlers: what a worker runs for a subject, and how a payload is passed to it."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from atp.core.errors import AlreadyExists, InvalidInput
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

    @functools.cached_property
    def is_async(self) -> bool:
        return asyncio.iscoroutinefunction(self.fn)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    def arguments(self, task: Task) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Return how ``task.payload`` is passed to the function.

        An object whose keys fit the parameters is passed as keywords
        (``{"order_id": 42}`` -> ``fn(order_id=42)``); anything else, or an object that
        does not fit, as the one positional argument; ``None`` to a function without
        required parameters as nothing. Raises InvalidInput when nothing fits, so a
        malformed task goes to the dead-letter state instead of being retried.
        """
        payload: JSON = task.payload
        tries: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        if isinstance(payload, Mapping):
            tries.append(((), dict(payload)))
        if payload is None:
            tries.append(((), {}))
        tries.append(((payload,), {}))
        error: TypeError | None = None
        for args, kwargs in tries:
            try:
                self.signature.bind(*args, **kwargs)
            except TypeError as exc:
                error = error or exc
                continue
            return args, kwargs
        raise InvalidInput(f"payload does not fit handler {_name(self.fn)}: {error}")


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
