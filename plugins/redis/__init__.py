"""Built-in plugin: transport, task store, coordinator and the API's rate limiter on Redis,
for ``redis://`` and ``rediss://`` URLs.

``redis://[user:password@]host[:port][/db][?prefix=atp&socket_timeout=5&...]``: the
prefix starts every key (default ``atp``); other options go to redis-py. They all share
one connection pool per process and URL. redis-py (the ``redis`` extra) is imported only
when a Redis URL is used, so the other backends work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atp.core.errors import ConfigError
from atp.core.plugins import hookimpl
from atp.core.ports import Clock, Coordinator, Limiter, TaskStore, Transport
from atp.core.settings import Settings

if TYPE_CHECKING:
    from atp.plugins.redis._connection import RedisUrl

__all__ = [
    "atp_make_coordinator",
    "atp_make_limiter",
    "atp_make_store",
    "atp_make_transport",
    "atp_url_schemes",
]

SCHEMES = ["redis", "rediss"]


@hookimpl
def atp_url_schemes() -> dict[str, list[str]]:
    return {"transport": SCHEMES, "store": SCHEMES, "coordinator": SCHEMES}


@hookimpl
def atp_make_transport(url: str, settings: Settings, clock: Clock) -> Transport | None:
    """A Streams transport for a Redis URL; None for another scheme. No I/O."""
    parsed = _parse(url)
    if parsed is None:
        return None
    from atp.plugins.redis.transport import RedisTransport

    return RedisTransport(parsed, clock, lease=settings.lease)


@hookimpl
def atp_make_store(url: str, settings: Settings, clock: Clock) -> TaskStore | None:
    """A task store for a Redis URL; None for another scheme. No I/O."""
    parsed = _parse(url)
    if parsed is None:
        return None
    from atp.plugins.redis.store import RedisStore

    return RedisStore(parsed)


@hookimpl
def atp_make_coordinator(url: str, settings: Settings, clock: Clock) -> Coordinator | None:
    """A lease coordinator for a Redis URL; None for another scheme. No I/O."""
    parsed = _parse(url)
    if parsed is None:
        return None
    from atp.plugins.redis.coordinator import RedisCoordinator

    return RedisCoordinator(parsed, clock)


@hookimpl
def atp_make_limiter(url: str, settings: Settings, clock: Clock) -> Limiter | None:
    """The API's rate limiter for a Redis URL, timed by the server; None for another
    scheme. No I/O."""
    parsed = _parse(url)
    if parsed is None:
        return None
    from atp.plugins.redis.limiter import RedisLimiter

    return RedisLimiter(parsed)


def _parse(url: str) -> RedisUrl | None:
    if url.partition("://")[0].lower() not in SCHEMES:
        return None
    try:
        from atp.plugins.redis._connection import parse_url
    except ImportError as exc:
        raise ConfigError(
            f"{url.partition('://')[0]}:// needs redis-py: pip install 'atp[redis]' ({exc})"
        ) from exc
    return parse_url(url)
