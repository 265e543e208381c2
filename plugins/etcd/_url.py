"""Parse ``etcd://`` URLs: one or more members, a key prefix and a per-call timeout.

``etcd://host:port[,host:port...][/][?prefix=atp&timeout=3]``. A member without a port
uses 2379; an IPv6 address is written in brackets (``[::1]:2379``). No I/O happens here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from atp.core.errors import InvalidInput
from atp.core.urls import mask, query_options

__all__ = ["DEFAULT_PORT", "EtcdTarget", "parse_url"]

SCHEME = "etcd"
DEFAULT_PORT = 2379
_OPTIONS = ("prefix", "timeout")
_HOST = re.compile(
    r"\A(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>\d*))?\Z"
)
_PREFIX = re.compile(r"\A[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\Z")


@dataclass(frozen=True, slots=True)
class EtcdTarget:
    """The members of one etcd cluster and how atp uses it."""

    url: str
    endpoints: tuple[tuple[str, int], ...]
    """``(host, port)`` of each member, in the order they are tried."""
    prefix: str = "atp"
    """Every key atp writes starts with ``<prefix>/``, so one cluster serves many
    deployments. Default ``atp``."""
    timeout: float = 3.0
    """Seconds one call may take on one member before the next member is tried. Default 3."""


def parse_url(url: str) -> EtcdTarget:
    """Return the target of ``url``; raise InvalidInput naming the URL if it is malformed."""
    prefix = SCHEME + "://"
    if not url.lower().startswith(prefix):
        raise InvalidInput(f"etcd URL {mask(url)!r} must start with {prefix!r}")
    rest, _, query = url[len(prefix) :].partition("?")
    members, _, path = rest.partition("/")
    if "#" in url:
        raise InvalidInput(f"etcd URL {mask(url)!r}: a fragment ('#') is not allowed")
    if path:
        raise InvalidInput(
            f"etcd URL {mask(url)!r}: a path is not allowed; choose the key prefix with "
            "?prefix=NAME"
        )
    if "@" in members:
        raise InvalidInput(
            f"etcd URL {mask(url)!r}: credentials are not supported; run etcd without auth on a "
            "private network, or put a proxy that authenticates in front of it"
        )
    options = query_options(f"etcd URL {mask(url)!r}", query, _OPTIONS)
    return EtcdTarget(
        url=url,
        endpoints=_endpoints(url, members),
        prefix=_prefix(url, options.get("prefix", "atp")),
        timeout=_timeout(url, options.get("timeout", "3")),
    )


def _endpoints(url: str, members: str) -> tuple[tuple[str, int], ...]:
    if not members:
        raise InvalidInput(
            f"etcd URL {mask(url)!r} names no member: use etcd://host:2379[,host:port]"
        )
    found = []
    for member in members.split(","):
        match = _HOST.match(member.strip())
        if match is None:
            raise InvalidInput(f"etcd URL {mask(url)!r}: {member!r} is not host:port")
        host = match["ip6"] or match["host"]
        found.append((host, _port(url, member, match["port"])))
    return tuple(found)


def _port(url: str, member: str, text: str | None) -> int:
    if text is None:
        return DEFAULT_PORT
    if not text or not 0 < int(text) < 65536:
        raise InvalidInput(f"etcd URL {mask(url)!r}: {member!r} needs a port from 1 to 65535")
    return int(text)


def _prefix(url: str, value: str) -> str:
    value = value.strip("/")
    if not _PREFIX.match(value):
        raise InvalidInput(
            f"etcd URL {mask(url)!r}: prefix must be words of [A-Za-z0-9_.-] joined by '/', "
            f"got {value!r}"
        )
    return value


def _timeout(url: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInput(f"etcd URL {mask(url)!r}: timeout must be seconds > 0, got {value!r}")
    return seconds
