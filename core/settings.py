"""Settings: defaults, then an optional ``atp.toml``, then ``ATP_*`` environment variables.

There is no global settings object: ``Settings.load()`` returns a frozen value that is
passed to whatever needs it. Errors name the key and the value; an unknown key in the file
is refused with the closest known name as a hint, and so is an unknown key of a table atp
reads (``[atp.server]``, ``[atp.prometheus]``). A table named after a backend is refused
too, naming where its options go (the URL); any other table is kept, with a warning, for a
third-party plugin that reads ``settings.extra``.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atp.core.durations import parse_duration
from atp.core.errors import ConfigError, InvalidInput
from atp.core.quoting import hint
from atp.core.urls import mask

__all__ = ["ELSEWHERE", "TABLES", "Settings"]

log = logging.getLogger("atp.settings")

_DURATIONS = frozenset(
    {
        "lease",
        "heartbeat",
        "timeout",
        "retry_base",
        "retry_cap",
        "max_delay",
        "idempotency_window",
        "retention",
        "forward_interval",
        "forward_horizon",
        "ready_timeout",
        "leader_ttl",
        "max_clock_skew",
        "drain_timeout",
        "reap_interval",
        "registry_ttl",
    }
)
_META_ENV = frozenset({"ATP_CONFIG"})
MAX_HORIZON = 60.0

TABLES: Mapping[str, frozenset[str]] = {
    "server": frozenset(
        {
            "host",
            "port",
            "grpc_port",
            "auth",
            "tokens_file",
            "tokens",
            "rate",
            "burst",
            "limiter",
            "max_body",
            "max_batch",
            "max_page",
            "console",
            "trace_url",
        }
    ),
    "prometheus": frozenset({"port", "host", "depth", "depth_interval", "max_subjects", "token"}),
}
"""The sub-tables of ``[atp]`` that atp's own parts read, with their keys: ``[atp.server]``
(``atp server``'s ServerSettings) and ``[atp.prometheus]`` (the Prometheus plugin). Core
cannot import those readers, so the keys are listed here; tests/unit/test_settings.py pins
each list to its reader's fields. A typo is refused in every process, not only in the one
whose reader would have found it."""

ELSEWHERE: Mapping[str, str] = {
    "memory": "memory:// takes no options",
    "sqlite": "SQLite takes options in its URL (sqlite:///atp.db?synchronous=normal)",
    "local": "local:// takes options in its URL (local:///atp.db?busy_timeout=5000)",
    "redis": "Redis takes options in its URL (redis://host:6379/0?prefix=atp, docs/redis.md)",
    "nats": "NATS takes options in its URL (nats://host:4222?stream=ATP, docs/nats.md)",
    "etcd": "etcd takes options in its URL (docs/etcd.md)",
    "otel": "OpenTelemetry reads the standard OTEL_* environment variables",
}
"""Tables an operator may expect but atp does not read, with where those settings go: a
backend's options belong to its URL, which every process and role is given."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything an atp process can be told. Each field: what it is, then its default."""

    store: str = "sqlite:///atp.db"
    """TaskStore URL. Default ``sqlite:///atp.db`` (a file in the working directory)."""
    transport: str = "memory://"
    """Transport URL. Default ``memory://`` (in-process; only for ``atp dev`` and tests)."""
    coordinator: str = ""
    """Coordinator URL. Default: ``local://`` on the SQLite store's file when the store is
    SQLite (leases shared by every process on this machine), else the store's own URL
    (its server then holds the leases too, where its plugin serves a coordinator)."""
    app: str = ""
    """``module:attribute`` of the App whose handlers a worker runs. Default none."""
    subjects: tuple[str, ...] = (">",)
    """Subject patterns a worker consumes. Default ``>`` (everything)."""
    group: str = "default"
    """Consumer group of a worker: groups each get every task. Default ``default``."""
    concurrency: int = 32
    """Handler calls a worker runs at once. Default 32."""
    lease: float = 30.0
    """Seconds a running task stays leased without a heartbeat. Default 30."""
    heartbeat: float = 5.0
    """Seconds between a worker's lease extensions (and cancel checks). Default 5."""
    timeout: float = 300.0
    """Default seconds one attempt may run. Default 300."""
    max_attempts: int = 3
    """Default attempts before a task is dead. Default 3."""
    retry_base: float = 1.0
    """First backoff ceiling in seconds (doubles per attempt, full jitter). Default 1."""
    retry_cap: float = 300.0
    """Largest backoff in seconds. Default 300."""
    max_payload: int = 1_048_576
    """Largest payload, in bytes of JSON. Default 1 MiB."""
    max_delay: float = 366 * 86400.0
    """Largest delay a producer may ask for, in seconds. Default 366 days."""
    idempotency_window: float = 86400.0
    """Seconds an idempotency key keeps returning its task. Default 24 h."""
    retention: float = 7 * 86400.0
    """Seconds finished (succeeded, cancelled) tasks are kept. Default 7 days."""
    forward_interval: float = 0.05
    """Seconds between the scheduler's looks for due tasks. Default 0.05."""
    forward_batch: int = 1000
    """Due tasks moved per look. Default 1000."""
    forward_horizon: float = 1.0
    """Seconds ahead of their due time the leader takes tasks into a local timer, which
    publishes each at its ``run_at``, over a durable transport (Redis Streams, NATS
    JetStream); 0 takes only due tasks, as over the memory transport. Default 1."""
    ready_timeout: float = 300.0
    """Seconds a published task may wait unclaimed before it is published again. Default 300."""
    reap_interval: float = 1.0
    """Seconds between the reaper's looks for expired leases. Default 1."""
    leader_ttl: float = 10.0
    """Seconds the scheduler's leader lease lasts without renewal. Default 10."""
    max_clock_skew: float = 2.0
    """Seconds this host's clock may differ from the store server's before the scheduler
    refuses to lead and the worker to take tasks (ADR 0029); 0 turns the check off.
    Default 2."""
    drain_timeout: float = 30.0
    """Seconds a stopping worker waits for running handlers. Default 30."""
    registry_ttl: float = 15.0
    """Seconds a worker stays listed in the registry after its last announcement (it
    announces every ``heartbeat``): a worker killed is gone from ``atp workers ls`` within
    this. Default 15."""
    outbox: str = ""
    """A file where a producer keeps the publishes its store could not take, and delivers
    them from once the store is back (ADR 0043). Default none: such a publish fails."""
    plugins: tuple[str, ...] = ()
    """Extra plugin modules to load, beside built-ins and entry points. Default none."""
    log_level: str = "INFO"
    """Logging level. Default INFO."""
    log_format: str = "text"
    """``text`` or ``json``. Default text."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Sub-tables of ``[atp]`` and ``ATP_<TABLE>__<KEY>`` variables, by table name: the
    ``TABLES`` atp reads, checked key by key, and those of third-party plugins. Default
    none."""

    def __post_init__(self) -> None:
        _check(self)

    def __repr__(self) -> str:
        # Its URLs may hold passwords, and a Settings (or a Platform holding one) may be
        # logged or shown in a traceback.
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("store", "transport", "coordinator"):
            shown[name] = mask(shown[name])
        return f"Settings({', '.join(f'{key}={value!r}' for key, value in shown.items())})"

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        path: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from ``atp.toml`` (or ``path`` / ``$ATP_CONFIG``), the environment
        and ``overrides``, later ones winning."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        named = path or env.get("ATP_CONFIG")
        values.update(_from_file(named or "atp.toml", required=bool(named)))
        from_env = _from_env(env)
        values["extra"] = _merge_tables(values.get("extra", {}), from_env.pop("extra", {}))
        values.update(from_env)
        values.update({key: value for key, value in overrides.items() if value is not None})
        settings = cls.from_mapping(values)
        _warn_foreign_tables(settings.extra)
        return settings

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Build settings from raw values (strings are converted); raise ConfigError."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        converted: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"unknown setting {key!r}{hint(key, known, listed=False)}")
            converted[key] = _convert(key, known[key].type, value)
        return cls(**converted)

    @property
    def coordinator_url(self) -> str:
        """The coordinator URL, with the SQLite default filled in."""
        if self.coordinator:
            return self.coordinator
        if self.store.startswith("sqlite://"):
            return "local://" + self.store.removeprefix("sqlite://")
        return self.store

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _from_file(path: str | os.PathLike[str], required: bool) -> dict[str, Any]:
    file = Path(path)
    if not file.exists():
        if required:
            raise ConfigError(f"config file {str(file)!r} does not exist")
        return {}
    try:
        data = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"config file {str(file)!r}: {exc}") from exc
    table = data.get("atp", data)
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    extra = {k: v for k, v in table.items() if isinstance(v, dict)}
    if extra:
        values["extra"] = extra
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("ATP_") or name in _META_ENV:
            continue
        key = name[4:].lower()
        table, nested, option = key.partition("__")
        if nested and table and option:  # ATP_SERVER__PORT: option "port" of [atp.server]
            values.setdefault("extra", {}).setdefault(table, {})[option] = value
        elif key in known:
            values[key] = value
        else:
            log.warning(
                "ignoring unknown environment variable %s%s", name, hint(key, known, listed=False)
            )
    return values


def _merge_tables(base: Mapping[str, Any], more: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Plugin tables of the file with ``ATP_TABLE__OPTION`` variables laid over them."""
    merged = dict(base)
    for table, options in more.items():
        merged[table] = {**merged.get(table, {}), **options}
    return merged


def _convert(key: str, kind: object, value: Any) -> Any:
    try:
        if key in _DURATIONS:
            return parse_duration(value, key)
        if kind in ("int", int):
            return _integer(value)
        if kind in ("tuple[str, ...]",) and isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if kind in ("tuple[str, ...]",):
            return tuple(str(part) for part in value)
        if kind in ("str", str):
            return str(value)
        return value
    except (InvalidInput, TypeError, ValueError) as exc:
        shown = mask(value) if isinstance(value, str) else value
        raise ConfigError(f"setting {key!r}: bad value {shown!r}: {exc}") from exc


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("expected an integer")
    return int(value)


def _check(settings: Settings) -> None:
    positive = (
        "concurrency",
        "lease",
        "heartbeat",
        "timeout",
        "max_attempts",
        "retry_cap",
        "max_payload",
        "idempotency_window",
        "forward_interval",
        "forward_batch",
        "ready_timeout",
        "reap_interval",
        "leader_ttl",
        "registry_ttl",
    )
    for name in positive:
        value = getattr(settings, name)
        if not value > 0:
            raise ConfigError(f"setting {name!r} must be greater than 0, got {value!r}")
    for name in (
        "retention",
        "max_delay",
        "drain_timeout",
        "retry_base",
        "forward_horizon",
        "max_clock_skew",
    ):
        value = getattr(settings, name)
        if value < 0:
            raise ConfigError(f"setting {name!r} must not be negative, got {value!r}")
    if settings.forward_horizon > MAX_HORIZON:
        raise ConfigError(
            f"setting 'forward_horizon' must be at most {MAX_HORIZON:g} s (the leader holds "
            f"what it takes ahead in memory), got {settings.forward_horizon!r}"
        )
    if settings.heartbeat >= settings.registry_ttl:
        raise ConfigError(
            f"setting 'heartbeat' ({settings.heartbeat}) must be shorter than 'registry_ttl' "
            f"({settings.registry_ttl}), or workers drop out of the registry between "
            "announcements"
        )
    if settings.heartbeat >= settings.lease:
        raise ConfigError(
            f"setting 'heartbeat' ({settings.heartbeat}) must be shorter than 'lease' "
            f"({settings.lease}), or leases run out between heartbeats"
        )
    if settings.log_format not in ("text", "json"):
        raise ConfigError(
            f"setting 'log_format' must be 'text' or 'json', got {settings.log_format!r}"
        )
    for name in ("store", "transport"):
        if "://" not in getattr(settings, name):
            raise ConfigError(
                f"setting {name!r} must be a URL, got {mask(getattr(settings, name))!r}"
            )
    _check_tables(settings.extra)


def _check_tables(extra: Mapping[str, Any]) -> None:
    """Refuse an unknown key of a table atp reads, and a table whose settings live elsewhere
    or whose name is a typo of one atp reads: each would otherwise be silently ignored."""
    for table, options in extra.items():
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"[atp.{table}] must be a table of options, got {type(options).__name__}"
            )
        if table in TABLES:
            _check_keys(table, options)
        elif table in ELSEWHERE:
            raise ConfigError(
                f"atp reads no [atp.{table}] table: {ELSEWHERE[table]}"
                f"; tables atp reads: {_tables()}"
            )
        elif close := difflib.get_close_matches(table, list(TABLES), n=1):
            raise ConfigError(
                f"unknown table [atp.{table}] (did you mean [atp.{close[0]}]?); "
                f"tables atp reads: {_tables()}"
            )


def _check_keys(table: str, options: Mapping[str, Any]) -> None:
    known = TABLES[table]
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"[atp.{table}]: unknown key {unknown[0]!r}{hint(unknown[0], known, listed=False)}; "
            f"known: {', '.join(sorted(known))}"
        )


def _warn_foreign_tables(extra: Mapping[str, Any]) -> None:
    """A table atp does not read may be a third-party plugin's (plugins load after the
    settings, so it cannot be known here): kept, and said once at load."""
    for table in sorted(set(extra) - set(TABLES)):
        log.warning(
            "[atp.%s] is not a table atp reads (%s): only a plugin reading "
            "settings.extra[%r] sees it",
            table,
            _tables(),
            table,
        )


def _tables() -> str:
    return ", ".join(f"[atp.{name}]" for name in sorted(TABLES))
