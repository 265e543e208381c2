"""Built-in plugin: the etcd coordinator for ``etcd://`` URLs (leader leases and locks),
and the API's rate limiter there (ADR 0042).

``etcd://host:port[,host:port...]?prefix=atp&timeout=3``: the members of one etcd
cluster (3.4 or later), tried in order and in turn when one fails. Leases live in etcd
under ``<prefix>/leases/``; fencing tokens are etcd revisions. It needs the ``etcd``
extra (``pip install 'atp[etcd]'``, the aetcd client); without it atp still runs, and an
``etcd://`` URL is refused with that hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atp.core.errors import ConfigError
from atp.core.plugins import hookimpl
from atp.core.ports import Clock, Coordinator, Limiter
from atp.core.settings import Settings
from atp.plugins.etcd._url import SCHEME, EtcdTarget, parse_url

if TYPE_CHECKING:
    from atp.plugins.etcd.coordinator import EtcdCoordinator

__all__ = [
    "EtcdTarget",
    "atp_make_coordinator",
    "atp_make_limiter",
    "atp_url_schemes",
    "make_coordinator",
]


@hookimpl
def atp_make_coordinator(url: str, settings: Settings, clock: Clock) -> Coordinator | None:
    """Build an EtcdCoordinator for an ``etcd://`` URL; None for any other scheme. No I/O."""
    if url.partition(":")[0].lower() != SCHEME:
        return None
    return make_coordinator(parse_url(url), clock)


@hookimpl
def atp_make_limiter(url: str, settings: Settings, clock: Clock) -> Limiter | None:
    """Build an EtcdLimiter, timed by ``clock``, for an ``etcd://`` URL; None for any other
    scheme. No I/O."""
    if url.partition(":")[0].lower() != SCHEME:
        return None
    target = parse_url(url)
    try:
        from atp.plugins.etcd.limiter import EtcdLimiter
    except ImportError as exc:
        raise ConfigError(
            f"limiter URL {target.url!r} needs the etcd client: pip install 'atp[etcd]' ({exc})"
        ) from exc
    return EtcdLimiter(target, clock)


@hookimpl
def atp_url_schemes() -> dict[str, list[str]]:
    """This plugin serves ``etcd://`` coordinators."""
    return {"coordinator": [SCHEME]}


def make_coordinator(target: EtcdTarget, clock: Clock) -> EtcdCoordinator:
    """Build the coordinator, importing the etcd client only now; ConfigError if missing."""
    try:
        from atp.plugins.etcd.coordinator import EtcdCoordinator
    except ImportError as exc:
        raise ConfigError(
            f"coordinator URL {target.url!r} needs the etcd client: pip install 'atp[etcd]' ({exc})"
        ) from exc
    return EtcdCoordinator(target, clock)
