"""Parse ``nats://`` URLs into a frozen NatsConfig; every mistake names the URL and the option.

``nats://[user:password@]host[:port][,host[:port]...][?option=value&...]``. The options
configure the stream and consumers atp provisions, so one URL serves a single server and
a cluster alike. Does no I/O and imports no NATS client.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atp.core.durations import parse_duration
from atp.core.errors import ConfigError, InvalidInput
from atp.core.settings import Settings
from atp.core.subjects import validate_subject
from atp.core.urls import mask, query_options

__all__ = ["SCHEME", "NatsConfig", "parse_url"]

SCHEME = "nats"
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_STORAGE = ("file", "memory")
_DEFAULT_WINDOW = 120.0


@dataclass(frozen=True, slots=True)
class NatsConfig:
    """Where the NATS servers are and how atp's stream and consumers are provisioned."""

    url: str
    """The URL this was parsed from (shown in errors, never with its password)."""
    servers: tuple[str, ...]
    """One ``nats://`` URL per server, credentials kept, for the client to rotate through."""
    stream: str = "ATP"
    """Name of the one stream holding every task. Default: the prefix, upper-cased."""
    prefix: str = "atp"
    """Subject prefix: task subject ``orders.close`` is NATS subject ``atp.orders.close``."""
    storage: str = "file"
    """``file`` (tasks survive a server restart; declared durable) or ``memory``."""
    replicas: int = 1
    """Stream replicas, 1 to 5; more than 1 needs a JetStream cluster of that size."""
    max_age: float = 3600.0
    """Seconds a message stays in the stream, acked or not (limits retention). Default
    1 hour; 0 keeps every message for ever. Must exceed ``ready_timeout``: the store
    republishes a READY task whose message aged out unclaimed."""
    duplicate_window: float = _DEFAULT_WINDOW
    """Seconds the server remembers a message id to drop a second publish of it.
    Default 2 minutes, capped at half of ``ready_timeout``."""
    ack_wait: float = 30.0
    """The lease: seconds a delivery stays with its consumer without an ack or
    ``keep_alive``. Default: the ``lease`` setting."""
    max_ack_pending: int = 20_000
    """Deliveries a consumer group may hold unacked at once. Default 20,000."""
    publish_timeout: float = 5.0
    """Seconds ``publish`` waits for the server's acks before raising. Default 5."""
    connect_timeout: float = 2.0
    """Seconds one connection attempt may take. Default 2."""

    @property
    def retention_subjects(self) -> list[str]:
        return [f"{self.prefix}.>"]

    def subject(self, task_subject: str) -> str:
        """The NATS subject of a task subject (or pattern)."""
        return f"{self.prefix}.{task_subject}"


def parse_url(url: str, settings: Settings) -> NatsConfig:
    """Return the config of ``url``; raise InvalidInput (bad URL) or ConfigError (bad mix)."""
    rest = _strip_scheme(url)
    location, _, query = rest.partition("?")
    if "#" in rest:
        raise InvalidInput(f"nats URL {mask(url)!r}: a fragment ('#') is not allowed")
    servers = _servers(url, location)
    options = query_options(f"nats URL {mask(url)!r}", query, _CONVERTERS)
    values: dict[str, Any] = {"ack_wait": settings.lease}
    for key, raw in options.items():
        values[key] = _CONVERTERS[key](url, key, raw)
    prefix = values.get("prefix", "atp")
    values.setdefault("stream", _stream_from(prefix))
    window_cap = settings.ready_timeout / 2
    values.setdefault("duplicate_window", min(_DEFAULT_WINDOW, window_cap))
    config = NatsConfig(url=mask(url), servers=servers, **values)
    _check(config, settings)
    return config


def _strip_scheme(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() != SCHEME:
        raise InvalidInput(f"nats URL {mask(url)!r} must start with 'nats://'")
    return rest


def _servers(url: str, location: str) -> tuple[str, ...]:
    if "/" in location:
        raise InvalidInput(f"nats URL {mask(url)!r}: a path is not allowed after the servers")
    parts = location.split(",")
    if not all(parts):
        raise InvalidInput(
            f"nats URL {mask(url)!r}: expected nats://host[:port][,host[:port]...], "
            "with no empty server"
        )
    for part in parts:
        _port(url, part.rpartition("@")[2])
    return tuple(f"nats://{part}" for part in parts)


def _port(url: str, host_port: str) -> None:
    host, colon, port = host_port.rpartition(":")
    if not colon or "]" in port:  # no port, or the end of an IPv6 address
        return
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise InvalidInput(f"nats URL {mask(url)!r}: bad server address {host_port!r}")


def _stream_from(prefix: str) -> str:
    return prefix.replace(".", "_").upper()[:64]


def _prefix(url: str, key: str, value: str) -> str:
    try:
        return validate_subject(value)
    except InvalidInput as exc:
        raise InvalidInput(f"nats URL {mask(url)!r}: option {key!r}: {exc}") from exc


def _stream(url: str, key: str, value: str) -> str:
    if not _STREAM_NAME.match(value):
        raise InvalidInput(
            f"nats URL {mask(url)!r}: option {key!r} must be 1 to 64 letters, digits, "
            f"'_' or '-', got {value!r}"
        )
    return value


def _storage(url: str, key: str, value: str) -> str:
    if value.lower() not in _STORAGE:
        raise InvalidInput(
            f"nats URL {mask(url)!r}: storage must be 'file' or 'memory', got {value!r}"
        )
    return value.lower()


def _integer(low: int, high: int) -> Callable[[str, str, str], int]:
    def convert(url: str, key: str, value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise InvalidInput(
                f"nats URL {mask(url)!r}: option {key!r} must be a whole number from {low} "
                f"to {high}, got {value!r}"
            )
        return int(value)

    return convert


def _duration(url: str, key: str, value: str) -> float:
    seconds = parse_duration(value, f"nats URL {mask(url)!r}: option {key!r}")
    if seconds < 0:
        raise InvalidInput(f"nats URL {mask(url)!r}: option {key!r} must not be negative")
    return seconds


_CONVERTERS: dict[str, Callable[[str, str, str], Any]] = {
    "stream": _stream,
    "prefix": _prefix,
    "storage": _storage,
    "replicas": _integer(1, 5),
    "max_age": _duration,
    "duplicate_window": _duration,
    "ack_wait": _duration,
    "max_ack_pending": _integer(1, 10_000_000),
    "publish_timeout": _duration,
    "connect_timeout": _duration,
}


def _check(config: NatsConfig, settings: Settings) -> None:
    """Refuse combinations that would lose or double work, naming the options involved."""
    for name in ("ack_wait", "publish_timeout", "connect_timeout", "duplicate_window"):
        if not getattr(config, name) > 0:
            raise InvalidInput(f"nats URL {config.url!r}: option {name!r} must be greater than 0")
    if config.ack_wait <= settings.heartbeat:
        raise ConfigError(
            f"nats URL {config.url!r}: ack_wait ({config.ack_wait:g}s) must be longer than the "
            f"'heartbeat' setting ({settings.heartbeat:g}s), or a running task's delivery "
            "is redelivered between two keep-alives"
        )
    if config.duplicate_window >= settings.ready_timeout:
        raise ConfigError(
            f"nats URL {config.url!r}: duplicate_window ({config.duplicate_window:g}s) must be "
            f"shorter than the 'ready_timeout' setting ({settings.ready_timeout:g}s), or the "
            "server drops the scheduler's republish of a task whose message was lost"
        )
    if config.max_age and config.max_age <= settings.ready_timeout:
        raise ConfigError(
            f"nats URL {config.url!r}: max_age ({config.max_age:g}s) must be 0 (no limit) or "
            f"longer than the 'ready_timeout' setting ({settings.ready_timeout:g}s), or "
            "messages age out before the store would republish them"
        )
