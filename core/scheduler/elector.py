"""The elector: holds the scheduler's leader lease through the Coordinator port."""

from __future__ import annotations

import logging

from atp.core.errors import AtpError
from atp.core.ports import Clock, Coordinator, Fence, Lease
from atp.core.scheduler.component import NotLeading
from atp.core.skew import SkewGuard

__all__ = ["Elector"]

log = logging.getLogger("atp.scheduler.elector")


class Elector:
    """Acquires and renews one named lease; knows whether this process leads right now.

    A renewal that fails keeps the leadership only until the lease's own expiry, so a
    leader cut off from its coordinator stops acting before another can be elected.
    With a ``skew`` guard, a host whose clock is too far from the store's neither
    acquires nor keeps the lease (ADR 0029): it would misjudge every lease and due time.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        clock: Clock,
        owner: str,
        *,
        ttl: float,
        role: str = "scheduler",
        skew: SkewGuard | None = None,
    ) -> None:
        self.owner = owner
        self.role = role
        self._coordinator = coordinator
        self._clock = clock
        self._ttl = ttl
        self._lease: Lease | None = None
        self._skew = skew

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
        """Acquire or renew once; return whether this process leads afterwards.

        The clock is checked before acquiring, and after renewing (a slow store must not
        delay the renewal); out of bounds, the lease is given up at once.
        """
        leading = self._lease is not None
        if not leading and not await self._clock_in_bounds():
            return False
        lease = await self._acquire_or_renew()
        # Until the clock is known good the components keep the old lease, which a
        # forward jump has already run out: nothing acts on the jumped clock meanwhile.
        if leading and lease is not None and not await self._clock_in_bounds():
            self._lease = lease
            await self.release()
            return False
        self._lease = lease
        return self.lease is not None

    async def _acquire_or_renew(self) -> Lease | None:
        """The new lease, or the one held when the coordinator cannot be reached."""
        try:
            if self._lease is None:
                return await self._coordinator.acquire(self.role, self.owner, self._ttl)
            return await self._coordinator.renew(self._lease, self._ttl)
        except AtpError as exc:
            log.warning("elector %s: coordinator unreachable: %s", self.owner, exc)
            return self._lease

    async def _clock_in_bounds(self) -> bool:
        return self._skew is None or await self._skew.check("lead")

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
