"""Clock faults: a process's wall clock jumps or runs skewed (ADR 0029).

They need a deployment whose processes run on movable clocks (``Suite.clocks``, which
puts each under libfaketime, chaos/faketime.py). A leader whose clock jumps must step
down before it misjudges a lease or a due time; a worker whose clock is off the store's
must stop taking tasks until it is back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chaos import faketime
from chaos.faults import Fault, Target, _leader
from chaos.invariants import Check, Evidence, _cause, _ids

__all__ = ["JumpLeaderClock", "SkewClock", "leader_jumps_harmless"]

JUMP = "leader clock"
"""How the label of every JumpLeaderClock begins."""


@dataclass
class JumpLeaderClock(Fault):
    """Jump the scheduler leader's clock ``jump`` seconds, hold ``hold`` seconds, jump back."""

    offset: float = 0.0
    jump: float = 120.0
    hold: float = 3.0

    @property
    def label(self) -> str:
        return f"{JUMP} {self.jump:+g} s"

    async def act(self, target: Target) -> str:
        leader = await _leader(target)
        if leader is None:
            return "no leader whose clock to jump"
        faketime.set_offset(leader.env, self.jump)
        try:  # a run cut short must not leave the clock wrong
            await asyncio.sleep(self.hold)
            new = await _leader(target)
        finally:
            faketime.set_offset(leader.env, 0.0)
        taken = f"{new.name} led meanwhile" if new and new is not leader else "nobody else led"
        return f"{leader.name} clock {self.jump:+g} s for {self.hold:g}s; {taken}; jumped back"


@dataclass
class SkewClock(Fault):
    """Set one ``role`` process's clock (drawn at random) ``by`` seconds off for
    ``duration`` seconds, then put it right."""

    role: str
    by: float
    offset: float = 0.0
    duration: float = 3.0

    @property
    def label(self) -> str:
        return f"{self.role} clock {self.by:+g} s"

    async def act(self, target: Target) -> str:
        processes = target.deployment.by_role(self.role)
        if not processes:
            return f"no {self.role} whose clock to skew"
        process = target.rng.choice(processes)
        faketime.set_offset(process.env, self.by)
        try:
            await asyncio.sleep(self.duration)
        finally:
            faketime.set_offset(process.env, 0.0)
        return f"{process.name} clock {self.by:+g} s for {self.duration:g}s, then right"


def leader_jumps_harmless(evidence: Evidence) -> Check:
    """No task ran again because the leader's clock jumped: the leader stepped down
    before its reaper could take a healthy lease for expired."""
    extra = [i for i, n in evidence.ledger.done.items() if n > 1]
    by_jump = [i for i in extra if _cause(evidence, i).startswith(JUMP)]
    jumps = sum(1 for f in evidence.faults if f.fault.startswith(JUMP))
    figures = {"leader clock jumps": jumps, "tasks run again after a jump": len(by_jump)}
    return Check(
        "a leader whose clock jumped recovered no healthy lease",
        not by_jump,
        figures,
        _ids("run again after a leader clock jump", by_jump),
    )
