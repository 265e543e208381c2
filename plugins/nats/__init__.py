"""Built-in plugin: the Transport on NATS JetStream for ``nats://`` URLs (extra ``atp[nats]``).

``nats://host:port[,host:port...]?option=value``; the options (stream, prefix, storage,
replicas, max_age, duplicate_window, ack_wait, max_ack_pending, publish_timeout,
connect_timeout) are described in ``docs/nats.md``. The client library is imported only
when a ``nats://`` URL is used, so atp runs without the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atp.core.errors import ConfigError
from atp.core.plugins import hookimpl
from atp.core.ports import Clock, Transport
from atp.core.settings import Settings
from atp.plugins.nats._config import SCHEME, NatsConfig, parse_url

if TYPE_CHECKING:
    from atp.plugins.nats.transport import NatsTransport

__all__ = ["NatsConfig", "NatsTransport", "atp_make_transport", "atp_url_schemes", "parse_url"]


@hookimpl
def atp_url_schemes() -> dict[str, list[str]]:
    """This plugin serves ``nats://`` transports."""
    return {"transport": [SCHEME]}


@hookimpl
def atp_make_transport(url: str, settings: Settings, clock: Clock) -> Transport | None:
    """Build a NatsTransport for a ``nats://`` URL; None for any other scheme. No I/O."""
    if url.partition(":")[0].lower() != SCHEME:
        return None
    config = parse_url(url, settings)
    try:
        from atp.plugins.nats.transport import NatsTransport
    except ImportError as exc:
        raise ConfigError(
            f"transport {config.url!r} needs the NATS client: pip install 'atp[nats]' ({exc})"
        ) from exc
    return NatsTransport(config, clock)


def __getattr__(name: str) -> object:
    if name == "NatsTransport":  # imported on demand: it needs nats-py
        from atp.plugins.nats.transport import NatsTransport

        return NatsTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
