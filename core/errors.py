"""One error tree for atp; every port translates its client library's errors into it.

    AtpError
    ├── InvalidInput          bad subject, payload, delay, URL, setting      HTTP 400 / INVALID_ARGUMENT
    │   └── PayloadTooLarge   payload over the configured limit              HTTP 413 / INVALID_ARGUMENT
    ├── NotFound              unknown task id, schedule, run                 HTTP 404 / NOT_FOUND
    ├── AlreadyExists         a unique name is taken                         HTTP 409 / ALREADY_EXISTS
    │   └── IdempotencyConflict  a key reused with other parameters          HTTP 409 / ALREADY_EXISTS
    ├── StateConflict         a transition the task's state forbids          HTTP 409 / FAILED_PRECONDITION
    │   └── FencedOut         a write from a leader whose lease was lost     HTTP 409 / FAILED_PRECONDITION
    ├── Unauthenticated       no bearer token, or one atp does not know      HTTP 401 / UNAUTHENTICATED
    ├── PermissionDenied      the token's scopes do not cover the request    HTTP 403 / PERMISSION_DENIED
    ├── RateLimited           the token's rate limit is spent for now        HTTP 429 / RESOURCE_EXHAUSTED
    ├── BackendUnavailable    a server cannot be reached or did not confirm  HTTP 503 / UNAVAILABLE
    ├── ConfigError           a configuration atp cannot honour              HTTP 500 / FAILED_PRECONDITION
    └── PluginError           a plugin is missing, broken or misbehaves      HTTP 500 / INTERNAL

Handlers steer their own retries with two signals that are not errors of atp:
``Retry(delay=...)`` asks for another attempt after ``delay`` seconds, ``Fail(reason)``
sends the task to the dead-letter state at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "AlreadyExists",
    "AtpError",
    "BackendUnavailable",
    "ConfigError",
    "Fail",
    "FencedOut",
    "IdempotencyConflict",
    "InvalidInput",
    "KeyConflict",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PluginError",
    "RateLimited",
    "Retry",
    "StateConflict",
    "Unauthenticated",
    "translate_errors",
]


class AtpError(Exception):
    """Base of every error atp raises on purpose."""

    http_status = 500
    grpc_code = "INTERNAL"
    type_slug = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_E = TypeVar("_E", bound=type[AtpError])


def _wire(*, http: int | None = None, grpc: str | None = None, slug: str) -> Callable[[_E], _E]:
    """Give an error class its HTTP status, gRPC code and problem type (the tree above);
    a code left out is inherited."""

    def mark(cls: _E) -> _E:
        cls.type_slug = slug
        if http is not None:
            cls.http_status = http
        if grpc is not None:
            cls.grpc_code = grpc
        return cls

    return mark


@_wire(http=400, grpc="INVALID_ARGUMENT", slug="invalid-input")
class InvalidInput(AtpError):
    """The caller sent something atp cannot accept; nothing was changed."""


@_wire(http=413, slug="payload-too-large")
class PayloadTooLarge(InvalidInput):
    """A payload, header set or result is over its size limit; nothing was changed."""


@_wire(http=404, grpc="NOT_FOUND", slug="not-found")
class NotFound(AtpError):
    """No object with that id or name exists."""


@_wire(http=409, grpc="ALREADY_EXISTS", slug="already-exists")
class AlreadyExists(AtpError):
    """An object with that unique name exists already; nothing was changed."""


@dataclass(frozen=True, slots=True)
class KeyConflict:
    """One item of a publish whose idempotency key matched a task it does not describe."""

    index: int
    """The item's position in the publish call's batch."""
    task_id: str | None
    """The task the key belongs to; None when it is another item of the same call."""
    fields: tuple[str, ...]
    """The parameters that differ (``payload``, ``headers``, ...), never their values."""


@_wire(slug="idempotency-conflict")
class IdempotencyConflict(AlreadyExists):
    """An idempotency key was reused with other parameters than its task was published with.

    ``conflicts`` names each refused item, the task its key belongs to and which
    parameters differ. ``accepted`` holds, per item of the call, the id of the task
    accepted for it (created, or an exact duplicate), None for a refused item; it is
    empty when nothing of the call was accepted. A single publish is never half done:
    its one item either conflicts or is accepted.
    """

    def __init__(
        self,
        message: str,
        conflicts: Sequence[KeyConflict] = (),
        accepted: Sequence[str | None] = (),
    ) -> None:
        super().__init__(message)
        self.conflicts = tuple(conflicts)
        self.accepted = tuple(accepted)

    def details(self) -> dict[str, Any]:
        """``conflicts`` and ``accepted`` as JSON values, as the APIs carry them."""
        return {
            "conflicts": [
                {"index": c.index, "task_id": c.task_id, "fields": list(c.fields)}
                for c in self.conflicts
            ],
            "accepted": list(self.accepted),
        }

    @classmethod
    def from_details(cls, message: str, details: object) -> IdempotencyConflict:
        """The error back from ``details()``'s JSON; what is malformed there is left out."""
        found = details if isinstance(details, dict) else {}
        conflicts = [
            KeyConflict(item["index"], item.get("task_id"), tuple(item.get("fields", ())))
            for item in found.get("conflicts", ())
            if isinstance(item, dict) and isinstance(item.get("index"), int)
        ]
        accepted = found.get("accepted", ())
        ids = (
            [i if isinstance(i, str) else None for i in accepted]
            if isinstance(accepted, list)
            else []
        )
        return cls(message, conflicts, ids)


@_wire(slug="key-active")
class KeyActive(IdempotencyConflict):
    """A unique-while-active publish met a queued or running task with its key (ADR 0038).

    Each conflict names the active task (``fields`` is empty); ``accepted`` is as for
    IdempotencyConflict.
    """


@_wire(http=409, grpc="FAILED_PRECONDITION", slug="state-conflict")
class StateConflict(AtpError):
    """The object's current state forbids the requested transition; nothing was changed."""


@_wire(slug="fenced-out")
class FencedOut(StateConflict):
    """A leader-only write carried a fencing token older than one the store has seen.

    The writer lost its lease (a pause, a partition) and another leader took over; the
    write was refused and nothing was changed.
    """


@_wire(http=401, grpc="UNAUTHENTICATED", slug="unauthenticated")
class Unauthenticated(AtpError):
    """The request carries no bearer token, or one that atp does not know; nothing was changed."""


@_wire(http=403, grpc="PERMISSION_DENIED", slug="permission-denied")
class PermissionDenied(AtpError):
    """The token is valid but its scopes do not cover the request; nothing was changed."""


@_wire(http=429, grpc="RESOURCE_EXHAUSTED", slug="rate-limited")
class RateLimited(AtpError):
    """The token's request rate is spent; nothing was changed. Try again after ``retry_after``."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the request would be accepted


@_wire(http=503, grpc="UNAVAILABLE", slug="backend-unavailable")
class BackendUnavailable(AtpError):
    """A backend could not be reached or did not confirm the operation.

    For a write this means the outcome is unknown to the caller: a producer that gets it
    may publish again with the same idempotency key.
    """


@_wire(http=500, grpc="FAILED_PRECONDITION", slug="config-error")
class ConfigError(AtpError):
    """A setting or a combination of plugins atp cannot honour; raised at start-up."""

    @classmethod
    def not_kept(cls, store: object, what: str) -> ConfigError:
        """For a store without an optional capability (``what`` it keeps none of)."""
        return cls(
            f"the store {type(store).__name__} keeps no {what} "
            "(the memory, SQLite and Redis stores do)"
        )


@_wire(http=500, grpc="INTERNAL", slug="plugin-error")
class PluginError(AtpError):
    """A plugin is missing, failed to load, or broke its contract."""


class Retry(Exception):
    """Raised by a handler to ask for another attempt after ``delay`` seconds.

    The attempt still counts towards ``max_attempts``; ``delay=None`` uses the task's
    backoff policy.
    """

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class Fail(Exception):
    """Raised by a handler to send the task straight to the dead-letter state."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def translate_errors(
    mapping: dict[type[BaseException], Callable[[BaseException], AtpError]],
) -> Iterator[None]:
    """Re-raise a client library's exception as the atp error ``mapping`` builds for it.

    Plugins wrap every client call at the port, so nothing outside a plugin ever sees a
    client library's exception type. ``AtpError`` passes through unchanged.
    """
    try:
        yield
    except AtpError:
        raise
    except tuple(mapping) as exc:
        for kind, build in mapping.items():
            if isinstance(exc, kind):
                raise build(exc) from exc
        raise
