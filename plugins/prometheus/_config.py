"""The ``[atp.prometheus]`` table of atp.toml, checked once at start-up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atp.core.durations import parse_duration
from atp.core.errors import ConfigError, InvalidInput
from atp.core.settings import Settings

__all__ = ["PrometheusConfig"]

_DEPTH = ("auto", "on", "off")
MIN_TOKEN = 16
_VISIBLE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """How the metrics are served. Each field: what it is, then its default."""

    port: int = 9464
    """Port of the metrics endpoint of each worker and scheduler process; 0 serves none
    (``atp server`` serves ``/metrics`` on its own port either way). Default 9464."""
    host: str = "0.0.0.0"
    """Address that endpoint listens on. Default all interfaces."""
    depth: str = "auto"
    """Export the store's depth gauges: ``auto`` (in schedulers and ``atp server``, not
    in worker-only processes), ``on`` or ``off``. Default auto."""
    depth_interval: float = 10.0
    """Seconds a depth reading is reused before the store is asked again. Default 10."""
    max_subjects: int = 100
    """Distinct subject label values per process before new subjects are counted as
    ``_other``, so ids in subjects cannot blow up the series count (each value carries
    about 130 series). Default 100."""
    token: str | None = field(default=None, repr=False)
    """A bearer token both metrics endpoints then require (``Authorization: Bearer
    <token>``, Prometheus's ``authorization`` scrape option), at least 16 characters.
    Default none: ``/metrics`` is open to whoever reaches the port."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PrometheusConfig:
        """Read ``settings.extra["prometheus"]`` (the ``[atp.prometheus]`` table and
        ``ATP_PROMETHEUS__*`` variables); ConfigError naming a bad key or value."""
        table: Mapping[str, Any] = settings.extra.get("prometheus", {})
        known = {"port", "host", "depth", "depth_interval", "max_subjects", "token"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"[atp.prometheus]: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        default = cls()
        config = cls(
            port=_int(table, "port", default.port),
            host=str(table.get("host", default.host)),
            depth=str(table.get("depth", default.depth)),
            depth_interval=_seconds(table, "depth_interval", default.depth_interval),
            max_subjects=_int(table, "max_subjects", default.max_subjects),
            token=_token(table.get("token")),
        )
        config.check()
        return config

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"[atp.prometheus] port must be 0 to 65535, got {self.port}")
        if self.depth not in _DEPTH:
            raise ConfigError(
                f"[atp.prometheus] depth must be one of {', '.join(_DEPTH)}, got {self.depth!r}"
            )
        if self.depth_interval <= 0 or self.max_subjects < 1:
            raise ConfigError("[atp.prometheus] depth_interval and max_subjects must be > 0")


def _int(table: Mapping[str, Any], key: str, default: int) -> int:
    """An integer, or its digits as a string (``ATP_PROMETHEUS__PORT=9464``)."""
    value = table.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"[atp.prometheus] {key} must be an integer, got {value!r}")
    return value


def _token(value: Any) -> str | None:
    """The token, or None when unset or empty; never echoed in an error."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) < MIN_TOKEN or not _VISIBLE.fullmatch(value):
        raise ConfigError(
            f"[atp.prometheus] token must be at least {MIN_TOKEN} visible ASCII characters, "
            "without spaces"
        )
    return value


def _seconds(table: Mapping[str, Any], key: str, default: float) -> float:
    try:
        return parse_duration(table.get(key, default), f"prometheus.{key}")
    except InvalidInput as exc:
        raise ConfigError(f"[atp.prometheus] {exc.message}") from exc
