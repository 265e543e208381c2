"""The elector: holds the scheduler's leader lease through the Coordinator port."""

from __future__ import annotations

import logging

from atp.core.errors import AtpError
from atp.core.ports import Clock, Coordinator, Fence, Lease
from atp.core.scheduler.component import NotLeading

__all__ = ["Elector"]

log = logging.getLogger("atp.scheduler.elector")


class Elector:
    """Acquires and renews one named lease; knows whether this process leads right now.

    A renewal that fails keeps the leadership only until the lease's own expiry, so a
    leader cut off from its coordinator stops acting before another can be elected.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        clock: Clock,
        owner: str,
        *,
        ttl: float,
        role: str = "scheduler",
    ) -> None:
        self.owner = owner
        self.role = role
        self._coordinator = coordinator
        self._clock = clock
        self._ttl = ttl
        self._lease: Lease | None = None

    @property
    def lease(self) -> Lease | None:
        """The lease while this process leads and it has not run out, else None."""
        lease = self._lease
        if lease is not None and lease.expires_at <= self._clock.now():
            return None
        return lease

    @property
    def interval(self) -> float:
        """Seconds between renewals: a third of the lease."""
        return self._ttl / 3

    def fence(self) -> Fence:
        """The fencing token of the current lease; leader-only writes carry it."""
        lease = self.lease
        if lease is None:
            raise NotLeading(f"{self.owner} no longer holds {self.role!r}")
        return lease.fence

    async def step(self) -> bool:
        """Acquire or renew once; return whether this process leads afterwards."""
        coordinator = self._coordinator
        try:
            if self._lease is None:
                self._lease = await coordinator.acquire(self.role, self.owner, self._ttl)
            else:
                self._lease = await coordinator.renew(self._lease, self._ttl)
        except AtpError as exc:
            log.warning("elector %s: coordinator unreachable: %s", self.owner, exc)
        return self.lease is not None

    def drop(self) -> None:
        """Forget the lease locally (it was fenced out); the next step competes again."""
        self._lease = None

    async def release(self) -> None:
        """Give the lease up so another replica takes over at once."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            await self._coordinator.release(lease)
        except AtpError as exc:
            log.warning("elector %s: release failed, the lease runs out: %s", self.owner, exc)
