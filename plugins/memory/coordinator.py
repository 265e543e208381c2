"""The in-process Coordinator: named leases with fencing tokens, timed by the injected clock."""

from __future__ import annotations

from atp.core.errors import InvalidInput
from atp.core.ports import Clock, Coordinator, Lease

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
