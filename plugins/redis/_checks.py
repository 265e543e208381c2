"""The start-up check of a Redis server's settings that decide whether it keeps what it
acknowledged: eviction (refused) and persistence (warned about, unless accepted).

It runs on the first connection a process opens to a URL (redis-py's connect callback),
before any command of atp's: a server that may evict keys fails the first port call with
ConfigError. Every atp key matters, and some carry a TTL (idempotency keys), so no
eviction policy but ``noeviction`` is safe, ``volatile-*`` included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from redis import exceptions as rexc
from redis.asyncio import Connection

from atp.core.errors import ConfigError
from atp.core.urls import mask

__all__ = ["DURABILITY", "ServerCheck"]

log = logging.getLogger("atp.redis")

DURABILITY = ("checked", "none")
"""``?durability=``: ``checked`` (warn when the server is not persistent) or ``none``
(the operator accepts a server that may lose what it acknowledged)."""
_CONFIG = ("maxmemory-policy", "appendonly", "appendfsync")
_INFO = {"maxmemory_policy": "maxmemory-policy", "aof_enabled": "appendonly"}


class ServerCheck:
    """Checks one URL's server once per pool: on every new connection until one passes."""

    def __init__(self, url: str, durability: str) -> None:
        self._url = mask(url.partition("?")[0])
        self._warn = durability != "none"
        self.passed = False

    async def on_connect(self, conn: Connection) -> None:
        """redis-py's ``redis_connect_func``: the usual handshake, then the check."""
        await conn.on_connect()
        if self.passed:
            return
        found = await _read_settings(conn)
        try:
            self._judge(found)
        except ConfigError:
            await conn.disconnect()
            raise
        self.passed = True

    def _judge(self, found: Mapping[str, str]) -> None:
        policy = found.get("maxmemory-policy")
        if policy is not None and policy != "noeviction":
            raise ConfigError(
                f"Redis server {self._url}: maxmemory-policy is {policy!r}, so Redis may "
                "delete atp's keys (tasks, idempotency keys, leases) when memory runs out, "
                "losing accepted tasks; set 'maxmemory-policy noeviction' (redis.conf, or "
                "CONFIG SET)"
            )
        if policy is None:
            log.warning(
                "Redis server %s: could not read maxmemory-policy (CONFIG and INFO "
                "refused); make sure it is 'noeviction', or Redis may delete accepted tasks",
                self._url,
            )
        if self._warn:
            self._warn_persistence(found)

    def _warn_persistence(self, found: Mapping[str, str]) -> None:
        appendonly, fsync = found.get("appendonly"), found.get("appendfsync")
        if appendonly is None:
            log.warning(
                "Redis server %s: could not read appendonly (CONFIG and INFO refused); "
                "without AOF a Redis restart loses accepted tasks (?durability=none "
                "accepts that)",
                self._url,
            )
        elif appendonly != "yes":
            log.warning(
                "Redis server %s: appendonly is off: a Redis restart or crash loses every "
                "task accepted since the last snapshot; set 'appendonly yes' with "
                "'appendfsync everysec' or 'always', or add ?durability=none to the URL to "
                "accept the loss",
                self._url,
            )
        elif fsync == "no":
            log.warning(
                "Redis server %s: appendfsync is 'no': a machine crash loses the tasks "
                "accepted in the last ~30 s; set 'appendfsync everysec' or 'always' "
                "(?durability=none accepts that)",
                self._url,
            )


async def _read_settings(conn: Connection) -> dict[str, str]:
    """The server's settings by CONFIG GET; where CONFIG is renamed or forbidden (managed
    Redis), what INFO tells; empty if neither answers."""
    try:
        return {name: await _config_get(conn, name) for name in _CONFIG}
    except rexc.ResponseError:
        pass
    found: dict[str, str] = {}
    for section in ("memory", "persistence"):
        try:
            found.update(await _info(conn, section))
        except rexc.ResponseError:
            continue
    return found


async def _config_get(conn: Connection, name: str) -> str:
    await conn.send_command("CONFIG", "GET", name, check_health=False)
    reply = await conn.read_response()  # a map in RESP3, a flat list in RESP2
    values = list(reply.values()) if isinstance(reply, dict) else list(reply or ())[1::2]
    if not values:
        raise rexc.ResponseError(f"CONFIG GET {name}: no such setting")
    return _text(values[0]).lower()


async def _info(conn: Connection, section: str) -> dict[str, str]:
    await conn.send_command("INFO", section, check_health=False)
    found: dict[str, str] = {}
    for line in _text(await conn.read_response()).splitlines():
        key, _, value = line.partition(":")
        if key in _INFO:
            found[_INFO[key]] = {"1": "yes", "0": "no"}.get(value.strip(), value.strip().lower())
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
