"""The flow-control operations every way in calls: limits, pauses and what waits behind them.

Input is checked here (by ``Limit`` and ``validate_pattern``) before the ledger is written.
A resume wakes the tasks its pause held back, in batches; the scheduler's sweep does the
same for any a crash left behind (``wake_unpaused``), so a lost wake-up delays tasks and
never strands them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from atp.core.errors import ConfigError, NotFound
from atp.core.flow.rules import PAUSE_PREFIX, Limit, Rules, validate_target
from atp.core.platform import Platform
from atp.core.ports import Clock, FlowLedger, TaskStore
from atp.core.quoting import quote
from atp.core.subjects import validate_pattern

__all__ = [
    "WAKE_BATCH",
    "FlowService",
    "FlowStatus",
    "ledger_of",
    "wake_lists",
    "wake_unpaused",
]

WAKE_BATCH = 1000
"""Held tasks woken per ledger call."""


@dataclass(frozen=True, slots=True)
class FlowStatus:
    """Every limit and pause, and how many tasks wait behind each slot and pause."""

    limits: tuple[Limit, ...]
    pauses: tuple[str, ...]
    waiting: dict[str, int]
    """Waiter list -> tasks in it: ``k:<key>`` or ``s:<pattern>`` for a full slot,
    ``p:<subject>`` for a paused subject."""
    version: int


def ledger_of(store: TaskStore) -> FlowLedger:
    """The store as a FlowLedger; ConfigError naming the store if it keeps none."""
    if not isinstance(store, FlowLedger):
        raise ConfigError.not_kept(store, "flow-control ledger")
    return store


class FlowService:
    """Limits and pauses over one Platform's ledger (its store)."""

    def __init__(self, platform: Platform) -> None:
        self._store = platform.store
        self._clock = platform.clock

    @property
    def _ledger(self) -> FlowLedger:
        return ledger_of(self._store)

    async def set_limit(self, limit: Limit) -> Limit:
        """Create or replace the limit of its target; return it as stored."""
        stamped = dataclasses.replace(limit, updated_at=self._clock.now())
        await self._ledger.put_limits([stamped])
        return stamped

    async def remove_limit(self, target: str, *, key: bool = False) -> None:
        """Remove the limit on ``target``; NotFound if there is none."""
        name = f"{'key' if key else 'subject'}:{validate_target(target, key=key)}"
        (removed,) = await self._ledger.remove_limits([name])
        if not removed:
            raise NotFound(f"no limit on {quote(name)}")

    async def status(self) -> FlowStatus:
        ledger = self._ledger
        rules = await ledger.rules()
        waiting = await ledger.waiters()
        return FlowStatus(rules.limits, rules.pauses, waiting, rules.version)

    async def pause(self, pattern: str) -> bool:
        """Stop workers taking tasks of subjects matching ``pattern``; whether it was new.

        Tasks keep their times; a worker that meets one while the pattern is paused hands
        it back without spending an attempt, and it waits until a resume.
        """
        (changed,) = await self._ledger.set_paused([validate_pattern(pattern)], True)
        return changed

    async def resume(self, pattern: str) -> int:
        """Undo ``pause(pattern)`` and wake what it held; return how many tasks woke.

        NotFound if the pattern is not paused. A subject still matched by another paused
        pattern stays held.
        """
        ledger = self._ledger
        (changed,) = await ledger.set_paused([validate_pattern(pattern)], False)
        if not changed:
            raise NotFound(f"{quote(pattern)} is not paused")
        return await wake_unpaused(ledger, self._clock)


async def wake_unpaused(
    ledger: FlowLedger,
    clock: Clock,
    *,
    limit: int | None = None,
    waiting: dict[str, int] | None = None,
) -> int:
    """Wake the tasks held by pauses of subjects no longer paused; return how many.

    At most ``limit`` (None: all there are, in batches of ``WAKE_BATCH``); ``waiting``:
    the ledger's ``waiters()``, if the caller has just read them.
    """
    rules = await ledger.rules()
    if waiting is None:
        waiting = await ledger.waiters()
    lists = [name for name in waiting if _unpaused(name, rules)]
    return await wake_lists(ledger, lists, clock, limit=limit)


async def wake_lists(
    ledger: FlowLedger, names: list[str], clock: Clock, *, limit: int | None = None
) -> int:
    """Take the waiters out of the lists ``names`` and make them due now, in batches of
    ``WAKE_BATCH``, at most ``limit`` (None: all); return how many woke."""
    woken = 0
    while names and (limit is None or woken < limit):
        room = WAKE_BATCH if limit is None else min(WAKE_BATCH, limit - woken)
        ids = await ledger.unpark(names, limit=room)
        if not ids:
            break
        woken += await ledger.wake(ids, now=clock.now())
        if len(ids) < room:
            break
    return woken


def _unpaused(name: str, rules: Rules) -> bool:
    return name.startswith(PAUSE_PREFIX) and not rules.paused(name[len(PAUSE_PREFIX) :])
