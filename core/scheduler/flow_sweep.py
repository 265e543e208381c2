"""The flow sweep: wakes held tasks whose slot has room, whose pause has ended, or
whose circuit breaker closed or is due a probe.

Workers wake a slot's waiters themselves when they give the slot back, a resume wakes
what its pause held, and a probe's success what its breaker held. The sweep is what
makes that safe to lose: a worker killed between finishing and waking, a slot whose
holder died (its lease ran out, so nobody gives it back), a resume cut short. It is
also what starts a probe when an open breaker's time is up and no new task arrives.
Each look costs three ledger calls, one more while tasks wait behind a breaker.
"""

from __future__ import annotations

from atp.core.flow.circuits import wake_breakers
from atp.core.flow.service import WAKE_BATCH, wake_unpaused
from atp.core.ports import BreakerLedger, Clock, FlowLedger
from atp.core.scheduler.component import Component, Leadership

__all__ = ["FlowSweep"]


class FlowSweep(Component):
    """Every ``interval``, wakes up to ``WAKE_BATCH`` waiters of slots with room, of
    subjects no longer paused and of breakers closed (one of a breaker due a probe);
    idle over a store that keeps no ledger."""

    name = "flow-sweep"

    def __init__(
        self,
        ledger: FlowLedger | None,
        clock: Clock,
        interval: float,
        *,
        reserve: float,
        leader: Leadership,
        breakers: BreakerLedger | None = None,
    ) -> None:
        """``reserve``: how long a task woken here holds its slot on its way to a worker."""
        super().__init__(clock, interval, leader)
        self._ledger = ledger
        self._reserve = reserve
        self._breakers = breakers

    async def tick(self) -> bool:
        ledger = self._ledger
        if ledger is None:
            return False
        self._fence()  # only the leader sweeps (NotLeading otherwise)
        now = self._clock.now()
        ids = await ledger.wake_ready(now=now, limit=WAKE_BATCH, reserve=self._reserve)
        woken = await ledger.wake(ids, now=now) if ids else 0
        waiting = await ledger.waiters()
        woken += await wake_unpaused(ledger, self._clock, limit=WAKE_BATCH, waiting=waiting)
        if self._breakers is not None:
            woken += await wake_breakers(
                ledger, self._breakers, waiting, self._clock, limit=WAKE_BATCH
            )
        return len(ids) >= WAKE_BATCH or woken >= 2 * WAKE_BATCH
