"""The Redis Coordinator: leases with ``SET PX``, renewed and released only by their owner
(Lua), and a fencing token counter per name that grows on every change of holder.

A lease's expiry is the server's: ``expires_at`` is reported conservatively as the local
time when the request was sent plus the ttl, so a holder believes its lease ends no later
than the server does. What one Redis lock can and cannot promise, and where the fencing
token is checked, is in docs/adr/0012-redis-lock-and-fencing.md.

The registry (ADR 0041) is one ZSET of expiries and one HASH of JSON under the tag
``{members}``. Its clock is the server's ``TIME``, so workers whose clocks are skewed
agree on who has expired; each call is one script, announce for any number of members.
"""

from __future__ import annotations

from collections.abc import Sequence

from atp.core.errors import InvalidInput
from atp.core.ports import Clock, Coordinator, Lease, Member, Registry
from atp.core.registry import check_announce, check_names, decode_members
from atp.plugins.redis._connection import Link, RedisUrl, Scripts
from atp.plugins.redis.keys import LeaseKeys, RegistryKeys

__all__ = ["RedisCoordinator"]


class RedisCoordinator:
    """Named leases and the fleet's registry on one Redis server, timed by the server."""

    def __init__(self, url: RedisUrl, clock: Clock) -> None:
        self._link = Link(url)
        self._prefix = url.prefix
        self._clock = clock
        self._registry = RegistryKeys(url.prefix)

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if it is free, expired or ours; else None."""
        keys = self._keys(name, owner, ttl)
        sent = self._clock.now()
        async with self._link.guard("lease acquire"):
            token = await Scripts.run(
                self._link, "lease_acquire", [keys.holder, keys.token], [owner, _ms(ttl)]
            )
        if token is None:
            return None
        return Lease(name, owner, int(token), sent + ttl)

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend our lease to ``ttl`` from now; None if it expired, was released or taken."""
        keys = self._keys(lease.name, lease.owner, ttl)
        sent = self._clock.now()
        async with self._link.guard("lease renew"):
            renewed = await Scripts.run(
                self._link, "lease_renew", [keys.holder], [_value(lease), _ms(ttl)]
            )
        return Lease(lease.name, lease.owner, lease.token, sent + ttl) if renewed == 1 else None

    async def release(self, lease: Lease) -> None:
        """Give the lease up; a no-op if it is no longer ours."""
        keys = LeaseKeys(self._prefix, lease.name)
        async with self._link.guard("lease release"):
            await Scripts.run(self._link, "lease_release", [keys.holder], [_value(lease)])

    async def holder(self, name: str) -> Lease | None:
        """Return the unexpired lease of ``name``, or None."""
        keys = LeaseKeys(self._prefix, name)
        now = self._clock.now()
        async with self._link.guard("lease holder"):
            found = await Scripts.run(self._link, "lease_holder", [keys.holder], [])
        if not found or int(found[1]) <= 0:
            return None
        token, owner = found[0].decode().split(" ", 1)
        return Lease(name, owner, int(token), now + int(found[1]) / 1000)

    async def announce(self, members: Sequence[Member], *, ttl: float) -> None:
        """List each member until ``ttl`` from the server's now, in one script call."""
        bodies = check_announce(members, ttl)
        if not members:
            return
        args: list[str | bytes | int] = [_ms(ttl)]
        for member, body in zip(members, bodies, strict=True):
            args += [member.name, body]
        async with self._link.guard("registry announce"):
            await Scripts.run(self._link, "registry_announce", self._registry.both, args)

    async def withdraw(self, names: Sequence[str]) -> None:
        """Remove members by name in one script call; unknown names are ignored."""
        check_names(names)
        if not names:
            return
        async with self._link.guard("registry withdraw"):
            await Scripts.run(self._link, "registry_withdraw", self._registry.both, list(names))

    async def members(self, role: str | None = None) -> list[Member]:
        """The unexpired members (of ``role``, if given), sorted by name; the script
        forgets the expired ones as it reads."""
        async with self._link.guard("registry members"):
            found = await Scripts.run(self._link, "registry_members", self._registry.both, [])
        pairs = zip(found[::2], found[1::2], strict=True)
        return decode_members(((data, float(ms) / 1000) for data, ms in pairs), role)

    async def close(self) -> None:
        """Give the shared pool back; leases held run out on their own."""
        await self._link.close()

    def _keys(self, name: str, owner: str, ttl: float) -> LeaseKeys:
        if not name or not owner:
            raise InvalidInput(f"a lease needs a name and an owner, got {name!r} and {owner!r}")
        if not ttl > 0:
            raise InvalidInput(f"lease {name!r}: ttl must be greater than 0, got {ttl!r}")
        return LeaseKeys(self._prefix, name)


def _ms(ttl: float) -> int:
    return max(int(ttl * 1000), 1)


def _value(lease: Lease) -> str:
    return f"{lease.token} {lease.owner}"


_COORDINATOR: type[Coordinator] = RedisCoordinator
_REGISTRY: type[Registry] = RedisCoordinator
