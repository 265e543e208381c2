"""Built-in plugin: in-process transport, task store and coordinator for memory:// URLs.

``memory://`` or ``memory://name`` builds a new, empty instance on every call: two calls
never share state, and the name only labels the URL. Everything is lost when the process
ends; this serves ``atp dev`` (the transport) and ``atp.sdk.testing`` (all three).
"""

from __future__ import annotations

import re

from atp.core.errors import InvalidInput
from atp.core.plugins import hookimpl
from atp.core.ports import Clock, Coordinator, TaskStore, Transport
from atp.core.settings import Settings
from atp.plugins.memory.coordinator import MemoryCoordinator
from atp.plugins.memory.limiter import atp_make_limiter as atp_make_limiter
from atp.plugins.memory.store import MemoryStore
from atp.plugins.memory.transport import DeadLetter, MemoryConsumer, MemoryTransport

__all__ = [
    "DeadLetter",
    "MemoryConsumer",
    "MemoryCoordinator",
    "MemoryStore",
    "MemoryTransport",
    "atp_make_coordinator",
    "atp_make_store",
    "atp_make_transport",
    "atp_url_schemes",
]

_NAME = re.compile(r"[A-Za-z0-9_.-]*\Z")


@hookimpl
def atp_url_schemes() -> dict[str, list[str]]:
    return {"transport": ["memory"], "store": ["memory"], "coordinator": ["memory"]}


@hookimpl
def atp_make_transport(url: str, settings: Settings, clock: Clock) -> Transport | None:
    return MemoryTransport(clock, lease=settings.lease) if _owns(url) else None


@hookimpl
def atp_make_store(url: str, settings: Settings, clock: Clock) -> TaskStore | None:
    return MemoryStore() if _owns(url) else None


@hookimpl
def atp_make_coordinator(url: str, settings: Settings, clock: Clock) -> Coordinator | None:
    return MemoryCoordinator(clock) if _owns(url) else None


def _owns(url: str) -> bool:
    """Tell whether ``url`` is a memory URL; raise InvalidInput if it is a malformed one."""
    scheme, separator, name = url.partition("://")
    if not separator or scheme.lower() != "memory":
        return False
    if not _NAME.match(name):
        raise InvalidInput(
            f"memory URL {url!r}: expected memory:// or memory://name, where the name is "
            "letters, digits, '.', '_' or '-' (no path, query or credentials)"
        )
    return True
