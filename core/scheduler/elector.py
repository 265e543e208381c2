"""The elector: holds the scheduler's leader lease through the Coordinator port."""

from __future__ import annotations

import logging

from atp.core.errors import AtpError
from atp.core.ports import Clock, Coordinator, Fence, Lease
from atp.core.scheduler.component import NotLeading
from atp.core.skew import SkewGuard

__all__ = ["LEADER_LEASE", "Elector"]

log = logging.getLogger("atp.scheduler.elector")

LEADER_LEASE = "scheduler"
"""The name of the scheduler's leader lease (``atp workers ls`` shows its holder)."""


class Elector:
    """Acquires and renews one named lease; knows whether this process leads right now.

    A renewal that fails keeps the leadership only until the lease's own expiry, so a
    leader cut off from its coordinator stops acting before another can be elected.
    With a ``skew`` guard, a host whose clock is too far from the store's neither
    acquires nor keeps the lease (ADR 0029): it would misjudge every lease and due time.

    It says at INFO when it starts leading and when it is standby, naming the leader,
    and again only when that changes; each standby check is a DEBUG line.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        clock: Clock,
        owner: str,
        *,
        ttl: float,
        role: str = LEADER_LEASE,
        skew: SkewGuard | None = None,
    ) -> None:
        self.owner = owner
        self.role = role
        self._coordinator = coordinator
        self._clock = clock
        self._ttl = ttl
        self._lease: Lease | None = None
        self._skew = skew
        self._unreachable = False
        self._reported: tuple[object, ...] | None = None
        """What the last INFO line said (who leads), so it is said again only on a change."""
        self.checked_at: float | None = None
        """When the last step ran: acquired, renewed or found another replica leading."""

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
        leads = await self._step()
        self.checked_at = self._clock.now()
        if leads:
            self._report_leading()
        else:
            await self._report_standby()
        return leads

    async def _step(self) -> bool:
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
        self._unreachable = False
        try:
            if self._lease is None:
                return await self._coordinator.acquire(self.role, self.owner, self._ttl)
            return await self._coordinator.renew(self._lease, self._ttl)
        except AtpError as exc:
            log.warning("elector %s: coordinator unreachable: %s", self.owner, exc)
            self._unreachable = True
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

    # -- saying who leads --------------------------------------------------------------

    def _report_leading(self) -> None:
        lease = self.lease
        said = ("leader", lease.token if lease else None)
        if lease is not None and said != self._reported:
            log.info(
                "elector %s: leader: this replica leads %r (fencing token %d), "
                "renewing every %.3gs",
                self.owner,
                self.role,
                lease.token,
                self.interval,
            )
            self._reported = said

    async def _report_standby(self) -> None:
        """INFO when who leads changed since the last line (or on the first check), else
        DEBUG; the coordinator is asked who holds the lease only on standby replicas."""
        said, who = await self._standby()
        level = logging.INFO if said != self._reported else logging.DEBUG
        log.log(
            level, "elector %s: standby: %s, checking every %.3gs", self.owner, who, self.interval
        )
        self._reported = said

    async def _standby(self) -> tuple[tuple[object, ...], str]:
        """What to say about the leader, with the key that tells a change of it."""
        if self._skew is not None and not self._skew.in_bounds:
            return ("skew",), "this host's clock is out of bounds, not competing"
        if self._unreachable:
            return ("unreachable",), "the coordinator is unreachable"
        try:
            holder = await self._coordinator.holder(self.role)
        except AtpError:  # whoever holds it is not knowable here
            return ("unknown",), "another replica leads"
        if holder is None:
            return ("free",), "no replica holds the lease right now, competing for it"
        if holder.owner == self.owner:  # recorded as ours, yet not renewable by us
            return ("unknown",), "another replica leads"
        return ("standby", holder.owner, holder.token), (
            f"{holder.owner} leads (fencing token {holder.token})"
        )
