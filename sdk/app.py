"""``App``: where handlers are declared with ``@app.task``. Importing a module does nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.handlers import Handler, HandlerRegistry
from atp.core.model import RetryPolicy

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

    def __repr__(self) -> str:
        return f"App({self.name!r}, subjects={self.registry.patterns()!r})"


def _attempts(max_attempts: int | None, retries: int | None) -> int | None:
    if max_attempts is not None and retries is not None:
        raise InvalidInput("give max_attempts or retries, not both")
    value = retries + 1 if retries is not None else max_attempts
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInput(f"max_attempts must be an integer >= 1, got {value!r}")
    return value
