"""The in-process Coordinator: named leases with fencing tokens and the fleet's registry,
timed by the injected clock."""

from __future__ import annotations

from collections.abc import Sequence

from atp.core.errors import InvalidInput
from atp.core.ports import Clock, Coordinator, Lease, Member, Registry
from atp.core.registry import check_announce, check_names, decode_member

__all__ = ["MemoryCoordinator"]


class MemoryCoordinator:
    """Leases for the processes sharing this object: ``atp dev`` and tests.

    A lease stays recorded after it expires until someone else takes it, so its holder
    can take it back with the same token. The token of a name counts its changes of
    holder and survives release and expiry, so it only ever grows.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._leases: dict[str, Lease] = {}
        self._tokens: dict[str, int] = {}
        self._members: dict[str, Member] = {}

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if it is free, expired or ours; else None."""
        _check(name, owner, ttl)
        now = self._clock.now()
        current = self._leases.get(name)
        if current is not None and current.owner == owner:
            token = current.token
        elif current is not None and current.expires_at > now:
            return None
        else:
            token = self._tokens.get(name, 0) + 1
            self._tokens[name] = token
        lease = Lease(name, owner, token, now + ttl)
        self._leases[name] = lease
        return lease

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend our unexpired lease to ``ttl`` from now; None if it expired or was taken."""
        _check(lease.name, lease.owner, ttl)
        now = self._clock.now()
        current = self._leases.get(lease.name)
        if current is None or not _same(current, lease) or current.expires_at <= now:
            return None
        renewed = Lease(lease.name, lease.owner, lease.token, now + ttl)
        self._leases[lease.name] = renewed
        return renewed

    async def release(self, lease: Lease) -> None:
        """Give the lease up; a no-op if it is no longer ours."""
        current = self._leases.get(lease.name)
        if current is not None and _same(current, lease):
            del self._leases[lease.name]

    async def holder(self, name: str) -> Lease | None:
        """Return the unexpired lease of ``name``, or None."""
        current = self._leases.get(name)
        if current is None or current.expires_at <= self._clock.now():
            return None
        return current

    async def announce(self, members: Sequence[Member], *, ttl: float) -> None:
        """List each member, replacing its namesake, until ``ttl`` seconds from now."""
        bodies = check_announce(members, ttl)
        expires_at = self._clock.now() + ttl
        for body in bodies:  # decoded, so a member reads back as from any other backend
            member = decode_member(body, expires_at)
            self._members[member.name] = member

    async def withdraw(self, names: Sequence[str]) -> None:
        """Remove members by name; unknown names are ignored."""
        check_names(names)
        for name in names:
            self._members.pop(name, None)

    async def members(self, role: str | None = None) -> list[Member]:
        """The unexpired members (of ``role``, if given), sorted by name; forgets the rest."""
        now = self._clock.now()
        for name in [name for name, m in self._members.items() if m.expires_at <= now]:
            del self._members[name]
        found = (m for m in self._members.values() if role is None or m.role == role)
        return sorted(found, key=lambda member: member.name)

    async def close(self) -> None:
        """Nothing to release: the leases stay with this object, which remains usable."""


def _same(current: Lease, lease: Lease) -> bool:
    return current.owner == lease.owner and current.token == lease.token


def _check(name: str, owner: str, ttl: float) -> None:
    if not name or not owner:
        raise InvalidInput(f"a lease needs a name and an owner, got {name!r} and {owner!r}")
    if not ttl > 0:
        raise InvalidInput(f"lease {name!r}: ttl must be greater than 0, got {ttl!r}")


_COORDINATOR: type[Coordinator] = MemoryCoordinator
_REGISTRY: type[Registry] = MemoryCoordinator
