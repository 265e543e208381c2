"""Which ticks of a due schedule fire now: lateness, the misfire policy, the bounds.

A tick at most ``GRACE`` seconds old is late, not missed: it always fires, so a leader
failover (a few lease periods) loses no tick. Older ticks were missed (every scheduler was
down) and the schedule's misfire policy decides. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from atp.core.cron.expression import CronExpression
from atp.core.schedules import Misfire, Schedule

__all__ = ["GRACE", "MAX_CATCH_UP", "Round", "plan_round"]

GRACE = 60.0
"""Seconds a tick may be late and still fire whatever the misfire policy."""
MAX_CATCH_UP = 100
"""Most ticks one schedule fires in one round: missed ones under ``all``, late ones."""


@dataclass(frozen=True, slots=True)
class Round:
    """What one schedule does now: fire ``ticks`` (ascending), then wait for ``next_tick``."""

    ticks: list[float]
    next_tick: float
    missed: bool = False
    """Ticks older than the grace were found (the misfire policy applied)."""


def plan_round(schedule: Schedule, expression: CronExpression, now: float) -> Round:
    """Plan the firing of ``schedule`` at ``now``; nothing to fire before its next tick."""
    if schedule.next_tick > now:
        return Round([], schedule.next_tick)
    cutoff = now - GRACE
    if schedule.next_tick >= cutoff:
        late = _ticks_from(expression, schedule.next_tick, now, MAX_CATCH_UP)
        return Round(late.ticks, late.next_tick)
    missed = _missed(schedule, expression, cutoff)
    # Ticks are whole seconds: the first one at or after the cutoff follows ceil - 1.
    first = expression.next_after(math.ceil(cutoff) - 1)
    late = _ticks_from(expression, first, now, MAX_CATCH_UP - len(missed))
    return Round(missed + late.ticks, late.next_tick, missed=True)


def _ticks_from(expression: CronExpression, first: float, now: float, limit: int) -> Round:
    """The ticks from ``first`` (a tick) up to ``now``, at most ``limit``, and the next one."""
    ticks: list[float] = []
    tick = first
    following = expression.ticks(first)
    while tick <= now and len(ticks) < max(limit, 1):
        ticks.append(tick)
        tick = next(following)
    return Round(ticks, tick)


def _missed(schedule: Schedule, expression: CronExpression, cutoff: float) -> list[float]:
    """The missed ticks (``>= next_tick``, ``< cutoff``) the misfire policy fires, ascending."""
    wanted = {Misfire.SKIP: 0, Misfire.ONCE: 1, Misfire.ALL: MAX_CATCH_UP - 1}[schedule.misfire]
    ticks: list[float] = []
    before = cutoff
    while len(ticks) < wanted:
        tick = expression.previous_before(before)
        if tick is None or tick < schedule.next_tick:
            break
        ticks.append(tick)
        before = tick
    return ticks[::-1]
