"""Parse ``sqlite://`` and ``local://`` URLs the way SQLAlchemy spells SQLite URLs.

``sqlite:///relative/path.db`` (three slashes: relative to the working directory),
``sqlite:////absolute/path.db`` (four: absolute) and ``sqlite://:memory:`` (one private
connection). Query options: ``synchronous=full|normal``, ``busy_timeout=<ms>`` and
``mode=ro`` (open the file read-only: reads work, writes fail with ConfigError).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote

from atp.core.errors import InvalidInput
from atp.core.urls import query_options

__all__ = ["MEMORY", "SqliteTarget", "parse_url"]

MEMORY = ":memory:"
_SYNCHRONOUS = ("full", "normal")
_OPTIONS = ("busy_timeout", "mode", "synchronous")
_MODES = ("ro", "rw")


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    """Where a SQLite database lives and how its connection is tuned."""

    url: str
    path: str
    """An absolute file path, or ``:memory:``."""
    synchronous: str = "full"
    """``full``: every commit is fsynced (an accepted task survives power loss); ``normal``:
    faster, the last commits may be lost on power loss (never on a process crash)."""
    busy_timeout: int = 5000
    """Milliseconds a writer waits for another process's lock before giving up."""
    read_only: bool = False
    """``mode=ro``: open the file read-only, as for a file this process may not write."""

    @property
    def memory(self) -> bool:
        return self.path == MEMORY


def parse_url(url: str, scheme: str) -> SqliteTarget:
    """Return the target of ``url``; raise InvalidInput naming the URL if it is malformed.

    Does no I/O: a relative path is made absolute against the current directory now,
    so a later ``chdir`` does not move the database.
    """
    prefix = scheme + "://"
    if not url.lower().startswith(prefix):
        raise InvalidInput(f"{scheme} URL {url!r} must start with {prefix!r}")
    rest, _, query = url[len(prefix) :].partition("?")
    if "#" in rest or "#" in query:
        raise InvalidInput(f"{scheme} URL {url!r}: a fragment ('#') is not allowed")
    options = query_options(f"URL {url!r}", query, _OPTIONS)
    return SqliteTarget(
        url=url,
        path=_path(url, scheme, rest),
        synchronous=_sync(url, options.get("synchronous", "full")),
        busy_timeout=_busy_timeout(url, options.get("busy_timeout", "5000")),
        read_only=_mode(url, options.get("mode", "rw")) == "ro",
    )


def _path(url: str, scheme: str, rest: str) -> str:
    if rest in (MEMORY, "/" + MEMORY):
        return MEMORY
    if not rest.startswith("/"):
        raise InvalidInput(
            f"{scheme} URL {url!r} has no database path: use {scheme}:///relative/path.db, "
            f"{scheme}:////absolute/path.db or {scheme}://:memory:"
        )
    path = unquote(rest[1:])
    if not path or path.endswith("/"):
        raise InvalidInput(f"{scheme} URL {url!r}: the database path must name a file")
    return os.path.abspath(path)


def _sync(url: str, value: str) -> str:
    if value.lower() not in _SYNCHRONOUS:
        raise InvalidInput(f"URL {url!r}: synchronous must be 'full' or 'normal', got {value!r}")
    return value.lower()


def _busy_timeout(url: str, value: str) -> int:
    if not value.isdigit():
        raise InvalidInput(
            f"URL {url!r}: busy_timeout must be a whole number of milliseconds, got {value!r}"
        )
    return int(value)


def _mode(url: str, value: str) -> str:
    if value.lower() not in _MODES:
        raise InvalidInput(f"URL {url!r}: mode must be 'ro' or 'rw', got {value!r}")
    return value.lower()
