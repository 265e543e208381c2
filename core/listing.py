"""What every store's ``query`` makes of a TaskQuery's time range and idempotency key.

Ids are stamped with their creation time (``atp.core.ids``) and listings walk the id
index, so a time range is an id range: a store bounds its walk, it does not scan. The
range is on the time in the id, to the millisecond, which is ``Task.created_at`` for
every id the service makes. An idempotency key is scoped by its subject (ADR 0028), so
a query by key names the exact subject and is one lookup in the store's key index.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from atp.core.errors import InvalidInput
from atp.core.ids import first_id
from atp.core.ports import TaskQuery
from atp.core.quoting import quote
from atp.core.subjects import validate_subject

__all__ = ["check_query", "id_bounds", "key_of", "parse_instant"]


def check_query(query: TaskQuery) -> None:
    """Raise InvalidInput for a time range or key no store can answer."""
    for name in ("created_after", "created_before"):
        value = getattr(query, name)
        if value is not None and (isinstance(value, bool) or not _finite(value)):
            raise InvalidInput(f"{name} must be seconds since the epoch, got {quote(value)}")
    after, before = query.created_after, query.created_before
    if after is not None and before is not None and after > before:
        raise InvalidInput(f"created_after ({after:g}) is later than created_before ({before:g})")
    key = query.idempotency_key
    if key is None:
        return
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"idempotency_key must be a non-empty text, got {quote(key)}")
    if query.subject is None:
        raise InvalidInput("idempotency_key is scoped by subject: give the task's subject too")
    try:
        validate_subject(query.subject)
    except InvalidInput:
        message = f"idempotency_key needs an exact subject, not the pattern {quote(query.subject)}"
        raise InvalidInput(message) from None


def id_bounds(query: TaskQuery) -> tuple[str | None, str | None]:
    """The ids a listing walks: at least the first (None: from the oldest), below the
    second (None: from the newest), from the time range and the cursor together."""
    low = None if query.created_after is None else first_id(query.created_after)
    high = None if query.created_before is None else first_id(query.created_before)
    if query.cursor is not None and (high is None or query.cursor < high):
        high = query.cursor
    return low, high


def key_of(query: TaskQuery) -> tuple[str, str] | None:
    """The (subject, idempotency key) a checked ``query`` looks up, None if it names none."""
    if query.idempotency_key is None or query.subject is None:
        return None
    return query.subject, query.idempotency_key


def parse_instant(value: str, what: str) -> float:
    """An RFC 3339 time (``2030-01-02T03:04:05Z``; naive is UTC) or seconds since the
    epoch (``1893553445.5``) as seconds; raise InvalidInput naming ``what``."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = _rfc3339(value, what)
    if not _finite(seconds):
        raise InvalidInput(f"{what}: {quote(value)} is not a finite time")
    return seconds


def _rfc3339(value: str, what: str) -> float:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        example = "RFC 3339 such as 2030-01-02T03:04:05Z, or seconds since the epoch"
        raise InvalidInput(f"{what}: {quote(value)} is not a time ({example})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
