"""Built-in plugin: the local coordinator for local:// URLs (leases in a SQLite file).

``local:///relative/path.db`` or ``local:////absolute/path.db``, with the options of
``sqlite://`` URLs; the file may be the SQLite store's own. Every process on this machine
that names the same file shares the leases. ``local://:memory:`` (what a
``sqlite://:memory:`` store implies) keeps them in one private connection, like
``memory://``.
"""

from __future__ import annotations

from atp.core.errors import InvalidInput
from atp.core.plugins import hookimpl
from atp.core.ports import Clock, Coordinator
from atp.core.settings import Settings
from atp.plugins.local.coordinator import LocalCoordinator
from atp.plugins.sqlite.files import parse_url

__all__ = ["LocalCoordinator", "atp_make_coordinator", "atp_url_schemes"]

SCHEME = "local"


@hookimpl
def atp_make_coordinator(url: str, settings: Settings, clock: Clock) -> Coordinator | None:
    """Build a LocalCoordinator for a ``local://`` URL; None for any other scheme. No I/O."""
    if url.partition(":")[0].lower() != SCHEME:
        return None
    if url.partition("?")[0].lower() in ("local:", "local:/", "local://", "local:///"):
        raise InvalidInput(
            f"coordinator URL {url!r} names no file: use local:///path/to/file.db (leases "
            "shared by the processes of this machine), or memory:// for leases inside "
            "one process"
        )
    return LocalCoordinator(parse_url(url, SCHEME), clock)


@hookimpl
def atp_url_schemes() -> dict[str, list[str]]:
    """This plugin serves ``local://`` coordinators."""
    return {"coordinator": [SCHEME]}
