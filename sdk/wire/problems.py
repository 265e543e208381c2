"""How an atp error travels between a server and a client, both ways: its problem type
(``urn:atp:problem:<slug>``, the error's class) and, for a rate limit, its Retry-After.

REST answers carry them as RFC 9457 problem documents, gRPC as trailing metadata; the
server (an adapter) writes them with ``problem_type`` and ``retry_after``, the SDK's
clients read them back with ``error_from``.
"""

from __future__ import annotations

import inspect
import math

from atp.core import errors
from atp.core.errors import AtpError, RateLimited

__all__ = ["MAX_RETRY_AFTER", "PROBLEM_TYPE", "error_from", "retry_after"]

PROBLEM_TYPE = "urn:atp:problem:"
"""The prefix of every problem type: ``urn:atp:problem:<slug>`` names the error's class."""
MAX_RETRY_AFTER = 86400
"""The longest wait a Retry-After asks for, in seconds (a day)."""

_BY_SLUG: dict[str, type[AtpError]] = {
    kind.type_slug: kind
    for _, kind in inspect.getmembers(errors, inspect.isclass)
    if issubclass(kind, AtpError)
}


def retry_after(exc: RateLimited) -> str:
    """The whole seconds, 1 to a day, before a rate-limited caller may try again."""
    return str(max(1, math.ceil(min(exc.retry_after, MAX_RETRY_AFTER))))


def error_from(problem_type: str, message: str, retry_after: float = 1.0) -> AtpError:
    """The atp error a problem type names; a plain AtpError for an unknown one."""
    kind = _BY_SLUG.get(problem_type.removeprefix(PROBLEM_TYPE), AtpError)
    if kind is RateLimited:
        return RateLimited(message, retry_after)
    return kind(message)
