"""What ``atp server`` is told: the ``[atp.server]`` table, ``ATP_SERVER__*`` and flags.

[atp.server]
host = "127.0.0.1"
port = 8080
grpc_port = 50051             # 0: no gRPC server
tokens_file = "tokens.toml"   # [[tokens]] entries, as `atp token create` prints them
rate = 50.0                   # requests per second per token, unless the token says
burst = 100
limiter = "sqlite:///limits.db"  # default: beside a SQLite store, atp.db-limits
console = true                # the web console at /console/
trace_url = "http://127.0.0.1:16686/trace/{trace_id}"  # linked from a task's page
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atp.adapters._auth.tokens import Token, TokenBook
from atp.core.errors import ConfigError, InvalidInput
from atp.core.settings import Settings

__all__ = ["ServerSettings", "read_tokens_file"]

TABLE = "server"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Settings of the API servers. Each field: what it is, then its default."""

    host: str = "127.0.0.1"
    """Address both servers listen on. Default 127.0.0.1."""
    port: int = 8080
    """REST port. Default 8080."""
    grpc_port: int = 50051
    """gRPC port; 0 runs no gRPC server. Default 50051."""
    auth: bool = True
    """Require bearer tokens. Off only by ``--no-auth`` (or ``auth = false``). Default on."""
    tokens_file: str = ""
    """A TOML file of ``[[tokens]]`` entries. Default none."""
    tokens: str | list[Any] = ""
    """Token entries inline: a list in atp.toml, JSON text in ``ATP_SERVER__TOKENS``."""
    rate: float = 50.0
    """Requests per second a token may make, unless it sets its own. Default 50."""
    burst: int = 100
    """Requests a token may make at once after a quiet spell. Default 100."""
    limiter: str = ""
    """Limiter URL, shared by every server process. Default: for ``sqlite:///x.db`` the
    file ``x.db-limits``; else the store's URL if a limiter plugin serves it (Redis);
    else the coordinator's (etcd); else ``memory://`` (limits per process)."""
    max_body: int = 8 * 1_048_576
    """Largest request body in bytes. Default 8 MiB."""
    max_batch: int = 1000
    """Most tasks in one batch publish. Default 1000."""
    max_page: int = 1000
    """Largest page of a listing. Default 1000."""
    console: bool = True
    """Serve the web console at ``/console/``. Off by ``--no-console``. Default on."""
    trace_url: str = ""
    """A trace viewer's URL with ``{trace_id}`` in it, linked from a task's console page,
    e.g. ``http://127.0.0.1:16686/trace/{trace_id}``. Default none (the id is shown, unlinked)."""

    @classmethod
    def load(cls, settings: Settings, **overrides: Any) -> ServerSettings:
        """Read ``[atp.server]`` (and ``ATP_SERVER__*``), then ``overrides`` that are not None."""
        table = dict(settings.extra.get(TABLE, {}))
        table.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown [atp.server] setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        server = cls(**{key: _convert(key, known[key], value) for key, value in table.items()})
        server.check()
        return server

    def check(self) -> None:
        """Raise ConfigError for values no server can run with."""
        for name in ("rate", "burst", "max_body", "max_batch", "max_page"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"[atp.server] {name} must be > 0, got {getattr(self, name)}")
        for name in ("port", "grpc_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"[atp.server] {name} must be a port number")
        if self.trace_url and "{trace_id}" not in self.trace_url:
            raise ConfigError(
                f"[atp.server] trace_url must hold {{trace_id}}, got {self.trace_url!r}"
            )

    def check_page(self, limit: int) -> None:
        """Raise InvalidInput for a page size of a listing outside 1 to ``max_page``."""
        if not 1 <= limit <= self.max_page:
            raise InvalidInput(f"limit must be 1 to {self.max_page}, got {limit}")

    def token_book(self) -> TokenBook:
        """The configured tokens, from ``tokens_file`` and ``tokens``."""
        entries = _inline(self.tokens) + (_entries(self.tokens_file) if self.tokens_file else [])
        return TokenBook(Token.from_mapping(entry) for entry in entries)


def _convert(key: str, kind: object, value: Any) -> Any:
    try:
        if kind == "bool" and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if kind in ("int", "float"):
            return {"int": int, "float": float}[str(kind)](value)
    except ValueError as exc:
        raise ConfigError(f"[atp.server] {key}: bad value {value!r}") from exc
    return value


def _inline(tokens: str | list[Any]) -> list[Mapping[str, Any]]:
    if isinstance(tokens, list):
        return tokens
    if not tokens.strip():
        return []
    try:
        parsed = json.loads(tokens)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"[atp.server] tokens is not a JSON list: {exc}") from exc
    if not isinstance(parsed, list):
        raise ConfigError("[atp.server] tokens must be a list of token entries")
    return parsed


def read_tokens_file(path: str) -> TokenBook:
    """The tokens of a tokens file; ConfigError if it cannot be read or is not valid."""
    return TokenBook(Token.from_mapping(entry) for entry in _entries(path))


def _entries(path: str) -> list[Mapping[str, Any]]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"tokens file {path!r}: {exc}") from exc
    entries = data.get("tokens", [])
    if not isinstance(entries, list):
        raise ConfigError(f"tokens file {path!r}: expected [[tokens]] entries")
    return entries
