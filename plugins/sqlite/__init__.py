"""Built-in plugin: the SQLite task store for sqlite:// URLs.

``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite://:memory:``;
options ``?synchronous=full|normal`` (default full) and ``?busy_timeout=<ms>`` (default
5000). The file is opened on first use.
"""

from __future__ import annotations

from atp.core.plugins import hookimpl
from atp.core.ports import Clock, TaskStore
from atp.core.settings import Settings
from atp.plugins.sqlite.limiter import atp_make_limiter as atp_make_limiter
from atp.plugins.sqlite.store import SqliteStore

__all__ = ["SqliteStore", "atp_make_store", "atp_url_schemes"]

SCHEME = "sqlite"


@hookimpl
def atp_make_store(url: str, settings: Settings, clock: Clock) -> TaskStore | None:
    """Build a SqliteStore for a ``sqlite://`` URL; None for any other scheme. No I/O."""
    if url.partition(":")[0].lower() != SCHEME:
        return None
    return SqliteStore.from_url(url)


@hookimpl
def atp_url_schemes() -> dict[str, list[str]]:
    """This plugin serves ``sqlite://`` task stores."""
    return {"store": [SCHEME]}
