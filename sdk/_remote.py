"""Reaching an ``atp server``: which URLs do, and opening them.

A remote connection (``HttpRemote``, ``GrpcRemote``) offers the same ``Operations`` as a
Platform in this process, so ``Client`` calls them without knowing which one it has.
"""

from __future__ import annotations

from atp.core.clock import SystemClock
from atp.core.errors import ConfigError
from atp.core.ports import Clock
from atp.core.urls import mask
from atp.sdk._operations import Operations

__all__ = ["REMOTE_SCHEMES", "open_remote"]

REMOTE_SCHEMES = frozenset({"http", "https", "grpc"})
"""URL schemes that reach an ``atp server`` rather than a backend."""


def open_remote(url: str, token: str | None, clock: Clock | None = None) -> Operations:
    """The REST (``http(s)://``) or gRPC (``grpc://host:port``) connection for ``url``.

    ``clock`` (the system clock by default) is the one ``Client.wait`` polls on. Raises
    ConfigError when the extra it needs (``atp[http]``, ``atp[grpc]``) is missing.
    """
    scheme, _, rest = url.partition("://")
    clock = clock or SystemClock()
    try:
        if scheme == "grpc":
            from atp.sdk._grpc import GrpcRemote

            return GrpcRemote(rest.rstrip("/"), token, clock=clock)
        from atp.sdk._http import HttpRemote

        return HttpRemote(url, token, clock=clock)
    except ImportError as exc:
        extra = "grpc" if scheme == "grpc" else "http"
        raise ConfigError(
            f"{mask(url)!r} needs the {extra} extra: pip install 'atp[{extra}]'"
        ) from exc
