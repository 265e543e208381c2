"""The options of a publish, defined once, and the one way they become a ``PublishRequest``
(both public as ``atp.sdk.client.PublishOptions`` and ``atp.sdk.client.publish_request``).

``Client.publish``, ``Client.request`` and ``SyncClient.publish`` take them as keyword
arguments; the CLI's ``atp publish``, the REST body and the gRPC message map their own
field names onto them and go through ``publish_request`` too, so every way in reads
durations, times and headers the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TypeAlias, TypedDict, Unpack

from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.model import JSON, Dedup, DedupMode, RetryPolicy
from atp.core.service import PublishRequest

__all__ = [
    "Duration",
    "Instant",
    "PublishOptions",
    "dedup_of",
    "dedup_options",
    "epoch",
    "publish_request",
    "seconds",
]

Duration: TypeAlias = timedelta | float | str
"""A length of time: a ``timedelta``, seconds as a number, or text such as ``"30s"``."""
Instant: TypeAlias = datetime | float
"""A point in time: a timezone-aware ``datetime``, or seconds since the Unix epoch."""


class PublishOptions(TypedDict, total=False):
    """How one task is published; every key may be left out."""

    delay: Duration | None
    """Run after this long (exclusive with ``run_at``); neither: now."""
    run_at: Instant | None
    """Run at this time (exclusive with ``delay``)."""
    idempotency_key: str | None
    """Publishing the same key again within the window returns the same task."""
    headers: Mapping[str, str] | None
    """String headers carried by the task (``traceparent`` among them)."""
    max_attempts: int | None
    """Attempts before the task is dead; None: the handler's default."""
    timeout: Duration | None
    """How long one attempt may run; None: the handler's default."""
    priority: int
    """Higher first among tasks due at the same instant (the in-process transport also
    delivers waiting tasks higher first; Redis Streams and NATS in publish order); 0 by
    default."""
    retry: RetryPolicy | None
    """The backoff between attempts; None: the handler's default."""
    concurrency_key: str | None
    """Tasks sharing this key run at most the key's limit at once, across every worker
    (one at a time when no limit names the key)."""
    rate_key: str | None
    """Tasks sharing this key share the rate limits set for the key."""
    group_key: str | None
    """The fair group (a tenant): tasks waiting behind a full slot are woken group by
    group, each as often as its weight says (``set_limit(key, key=True, weight=)``)."""
    debounce: Duration | None
    """Replace the pending task of ``idempotency_key`` and run this long after the last
    publish: of a burst, only the last task runs. Sets the run time (no delay/run_at)."""
    throttle: Duration | None
    """At most one task of ``idempotency_key`` per this period: a publish within it
    returns the earlier task (``created=False``)."""
    unique: bool
    """Refuse (KeyActive) while a task of ``idempotency_key`` is queued or running."""


_KNOWN = PublishOptions.__optional_keys__


def publish_request(
    subject: str, payload: JSON = None, **options: Unpack[PublishOptions]
) -> PublishRequest:
    """The core request for ``subject`` with these options.

    Raises InvalidInput for a naive datetime or a malformed duration, TypeError for an
    option that does not exist (as a misspelt keyword argument would).
    """
    if not options.keys() <= _KNOWN:
        unknown = min(options.keys() - _KNOWN)
        raise TypeError(f"unexpected publish option {unknown!r}")
    delay, run_at, timeout = options.get("delay"), options.get("run_at"), options.get("timeout")
    return PublishRequest(
        subject=subject,
        payload=payload,
        delay=None if delay is None else seconds(delay, "delay"),
        run_at=None if run_at is None else epoch(run_at),
        idempotency_key=options.get("idempotency_key"),
        headers=dict(options.get("headers") or {}),
        max_attempts=options.get("max_attempts"),
        timeout=None if timeout is None else seconds(timeout, "timeout"),
        priority=options.get("priority", 0),
        retry=options.get("retry"),
        concurrency_key=options.get("concurrency_key"),
        rate_key=options.get("rate_key"),
        group_key=options.get("group_key"),
        dedup=dedup_of(options.get("debounce"), options.get("throttle"), options.get("unique")),
    )


def dedup_of(
    debounce: Duration | None, throttle: Duration | None, unique: bool | None
) -> Dedup | None:
    """The Dedup of the three exclusive options; InvalidInput for more than one."""
    given = [
        Dedup(DedupMode.DEBOUNCE, seconds(debounce, "debounce")) if debounce is not None else None,
        Dedup(DedupMode.THROTTLE, seconds(throttle, "throttle")) if throttle is not None else None,
        Dedup(DedupMode.UNIQUE) if _flag(unique, "unique") else None,
    ]
    found = [dedup for dedup in given if dedup is not None]
    if len(found) > 1:
        raise InvalidInput("give at most one of debounce, throttle and unique")
    return found[0] if found else None


def dedup_options(dedup: Dedup | None) -> PublishOptions:
    """The publish options that ``dedup_of`` turns back into ``dedup``."""
    if dedup is None:
        return {}
    if dedup.mode is DedupMode.DEBOUNCE:
        return {"debounce": dedup.period}
    if dedup.mode is DedupMode.THROTTLE:
        return {"throttle": dedup.period}
    return {"unique": True}


def _flag(value: object, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false, got {value!r}")
    return value


def seconds(value: Duration, what: str) -> float:
    """Seconds in a timedelta, a number or a duration text; InvalidInput otherwise."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return parse_duration(value, what)


def epoch(value: Instant) -> float:
    """Seconds since the epoch of an aware datetime or a number; InvalidInput otherwise."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(
                f"run_at {value.isoformat()} has no timezone: pass an aware datetime, "
                "such as datetime.now(timezone.utc)"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"run_at must be a datetime or seconds since the epoch, got {value!r}")
    return float(value)
