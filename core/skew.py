"""Clock skew: how far this host's clock is from the store server's, and whether that is
too far to judge leases and due times by it (ADR 0029).

Leases are stamped by workers and judged by the leader, due times are stamped by
producers and judged by the leader: every such comparison mixes two hosts' clocks. The
store's server clock is the reference both are measured against; a process whose clock
is off by more than ``max_clock_skew`` does no judging (it does not lead) and stamps
nothing (it takes no tasks) until it is back in bounds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from atp.core.errors import AtpError
from atp.core.ports import Clock, ServerTime

__all__ = ["Skew", "SkewGuard"]

log = logging.getLogger("atp.skew")


@dataclass(frozen=True, slots=True)
class Skew:
    """One measurement of this host's clock against the store server's."""

    ahead: float
    """Seconds this host's clock is ahead of the server's (negative: behind)."""
    uncertainty: float
    """Half the round trip: the true skew lies within ``ahead ± uncertainty``."""

    def beyond(self, bound: float) -> bool:
        """Whether the skew surely exceeds ``bound``, whatever the round trip hid."""
        return abs(self.ahead) - self.uncertainty > bound

    def describe(self) -> str:
        side = "ahead of" if self.ahead >= 0 else "behind"
        return f"{abs(self.ahead):.1f} s {side} the store's (±{self.uncertainty:.3f} s)"


class SkewGuard:
    """Measures the skew on request and remembers the verdict: in bounds or not.

    A store without ``server_time`` (memory, SQLite: on this host) is never checked, nor
    is anything when ``bound`` is 0. A failed measurement keeps the last verdict; the
    first verdict is "in bounds", so an unreachable store is the caller's error to meet.
    """

    def __init__(self, store: object, clock: Clock, bound: float, who: str) -> None:
        self._source = store if bound > 0 and isinstance(store, ServerTime) else None
        self._clock = clock
        self._bound = bound
        self._who = who
        self.in_bounds = True
        """The last verdict."""
        self.last: Skew | None = None
        """The last measurement, if any was made."""

    async def measure(self) -> Skew | None:
        """One round trip to the server; None when nothing is checked."""
        if self._source is None:
            return None
        before = self._clock.now()
        server = await self._source.server_time()
        after = self._clock.now()
        return Skew(ahead=(before + after) / 2 - server, uncertainty=(after - before) / 2)

    async def check(self, refusing: str) -> bool:
        """Measure and return whether the clock is in bounds; log an ERROR when it goes
        out (saying what this process is ``refusing`` to do) and an INFO when it is back."""
        try:
            skew = await self.measure()
        except AtpError as exc:
            log.warning("%s: cannot read the store's clock: %s", self._who, exc)
            return self.in_bounds
        if skew is None:
            return True
        self.last = skew
        ok = not skew.beyond(self._bound)
        if not ok and self.in_bounds:
            log.error(
                "%s: this host's clock is %s; refusing to %s until it is within "
                "max_clock_skew (%g s): fix the host's time (NTP)",
                self._who,
                skew.describe(),
                refusing,
                self._bound,
            )
        elif ok and not self.in_bounds:
            log.info("%s: clock back within max_clock_skew: %s", self._who, skew.describe())
        self.in_bounds = ok
        return ok

    async def run(self, stop: asyncio.Event, interval: float, refusing: str) -> None:
        """Check every ``interval`` seconds until ``stop`` is set."""
        if self._source is None:
            return
        while not await self._clock.wait(stop, interval):
            await self.check(refusing)
