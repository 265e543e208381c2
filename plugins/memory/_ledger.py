"""The in-process FlowLedger (ADR 0038): slots, buckets, windows, waiter lists and rules.

Like the store it sits beside, it runs in one event loop and no method awaits in the
middle of a change, so each call is atomic. The bucket and window arithmetic is
``atp.core.flow.meter``'s. ``MemoryStore`` mixes this in and adds ``wake``, which moves
its tasks.

State does not grow with the number of keys: a slot's limit is forgotten once the slot
has neither live holders nor waiters (a slot with no limit known and no holder has room
1, so a ``park`` arriving after the last holder left still finds room), and
``wake_ready`` also drops dead holders and idle buckets and windows. A waiter list is a
``_WaiterList`` (its groups, their passes, the list's time), dropped once empty. A waiter
woken for room becomes a holder until ``now + reserve`` (a plain entry of ``_holders``,
so it counts, expires and is extended like any holder).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from atp.core.flow.breaker import BREAKER_PREFIX
from atp.core.flow.meter import bucket_admit, window_admit
from atp.core.flow.rules import PAUSE_PREFIX, Gates, Limit, Rules
from atp.core.ports import Admission, Held, Verdict, Wait

__all__ = ["MemoryLedger"]

_HELD = (PAUSE_PREFIX, BREAKER_PREFIX)
"""Prefixes of the waiter lists no room opens: a pause's, an open breaker's."""
_WindowState = tuple[list[float], float, float]
"""A window's admission times (sorted), queue, and period (to tell when it is idle)."""


@dataclass
class _Group:
    """The waiters of one fair group in one list, and the group's stride state."""

    pass_: float
    weight: int
    waiting: list[tuple[float, str]] = field(default_factory=list)  # (rank, id), sorted


class _WaiterList:
    """One waiter list in wake order (the FlowLedger docstring): stride scheduling over
    its groups, then lowest rank, then lowest task id."""

    def __init__(self) -> None:
        self.time = 0.0  # the pass the group served last reached
        self.groups: dict[str, _Group] = {}
        self.places: dict[str, tuple[str, float]] = {}  # task id -> (group, rank)

    def __len__(self) -> int:
        return len(self.places)

    def add(self, wait: Wait) -> None:
        """Add a task, or move it (one place still) to this group and rank."""
        before = self.places.pop(wait.task_id, None)
        if before is not None:
            self.groups[before[0]].waiting.remove((before[1], wait.task_id))
        group = self.groups.setdefault(wait.group, _Group(self.time, wait.weight))
        group.weight = wait.weight
        bisect.insort(group.waiting, (wait.rank, wait.task_id))
        self.places[wait.task_id] = (wait.group, wait.rank)
        if before is not None:
            self._leave_if_done(before[0])

    def take(self, count: int) -> list[str]:
        """Remove and return up to ``count`` waiters, in wake order."""
        taken: list[str] = []
        while self.places and len(taken) < count:
            name = min(self.groups, key=lambda group: (self.groups[group].pass_, group))
            group = self.groups[name]
            _, task_id = group.waiting.pop(0)
            del self.places[task_id]
            group.pass_ += 1 / group.weight
            self.time = group.pass_
            self._leave_if_done(name)
            taken.append(task_id)
        return taken

    def _leave_if_done(self, name: str) -> None:
        """A group with no waiter left stops waiting: it forgets its pass."""
        if not self.groups[name].waiting:
            del self.groups[name]


class MemoryLedger:
    """Every FlowLedger method but ``wake``, over plain dicts."""

    def __init__(self) -> None:
        super().__init__()
        self._slot_limits: dict[str, int] = {}
        self._holders: dict[str, dict[str, float]] = {}  # slot -> task id -> until
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tat, queue)
        self._windows: dict[str, _WindowState] = {}
        self._waiting: dict[str, _WaiterList] = {}
        self._limits: dict[str, Limit] = {}
        self._pauses: set[str] = set()
        self._version = 0

    # -- admission -----------------------------------------------------------------------

    async def admit(self, requests: Sequence[Admission], *, now: float) -> list[Verdict]:
        """Admit each task in order, or refuse it taking nothing (see FlowLedger)."""
        return [self._admit(request, now) for request in requests]

    async def extend(self, held: Sequence[Held], *, until: float) -> None:
        """Move the ``until`` of the slots each task holds."""
        for item in held:
            for name in item.slots:
                holders = self._holders.get(name)
                if holders is not None and item.task_id in holders:
                    holders[item.task_id] = until

    async def release_slots(self, held: Sequence[Held], *, now: float, reserve: float) -> list[str]:
        """Give the slots back, then wake as many waiters as each has room for, each a
        holder until ``now + reserve``."""
        for item in held:
            for name in item.slots:
                self._holders.get(name, {}).pop(item.task_id, None)
        names = dict.fromkeys(name for item in held for name in item.slots)
        woken = [task_id for name in names for task_id in self._wake_slot(name, now, reserve)]
        self._forget_idle(names, now)
        return woken

    def _admit(self, request: Admission, now: float) -> Verdict:
        slots = request.gates.slots
        for slot in slots:
            self._slot_limits[slot.name] = slot.limit
        for slot in slots:
            others = self._live_holders(slot.name, now).keys() - {request.task_id}
            if len(others) >= slot.limit:
                return Verdict(False, wait_for=slot.name)
        retry_at = self._meter(request.gates, now)
        if retry_at is not None:
            return Verdict(False, retry_at=retry_at)
        for slot in slots:
            self._holders.setdefault(slot.name, {})[request.task_id] = request.lease_until
        return Verdict(True)

    def _meter(self, gates: Gates, now: float) -> float | None:
        """Ask every bucket and window; commit them all if each allows, else move the
        refusers' queues and return the latest retry time."""
        retries: list[float] = []
        tats: dict[str, float] = {}
        for bucket in gates.buckets:
            tat, queue = self._buckets.get(bucket.name, (0.0, 0.0))
            allowed, new_tat, queue, retry_at = bucket_admit(
                tat, queue, now, bucket.rate, bucket.burst
            )
            self._buckets[bucket.name] = (tat, queue)
            if allowed:
                tats[bucket.name] = new_tat
            else:
                retries.append(retry_at)
        lives: list[list[float]] = []
        for window in gates.windows:
            times, queue, _ = self._windows.get(window.name, ([], 0.0, window.period))
            allowed, live, queue, retry_at = window_admit(
                times, queue, now, window.count, window.period
            )
            self._windows[window.name] = (live, queue, window.period)
            if allowed:
                lives.append(live)
            else:
                retries.append(retry_at)
        if retries:
            return max(retries)
        for name, tat in tats.items():
            self._buckets[name] = (tat, self._buckets[name][1])
        for live in lives:
            live.append(now)
        return None

    def _live_holders(self, name: str, now: float) -> dict[str, float]:
        """The holders of slot ``name`` whose ``until`` has not passed; drops the others
        (and the slot's holder set once empty)."""
        holders = self._holders.get(name)
        if not holders:
            self._holders.pop(name, None)
            return {}
        live = {task_id: until for task_id, until in holders.items() if until > now}
        if not live:
            del self._holders[name]
        elif len(live) < len(holders):
            self._holders[name] = live
        return live

    def _room(self, name: str, now: float) -> int:
        """Limit minus live holders; a limit not known counts as 1, a pause's or a
        breaker's list has none."""
        if name.startswith(_HELD):
            return 0
        return self._slot_limits.get(name, 1) - len(self._live_holders(name, now))

    def _forget_idle(self, names: Iterable[str], now: float | None) -> None:
        """Forget the limit of each slot with neither holders nor waiters. With ``now``
        None (unpark has no time) a holder past its ``until`` still counts."""
        for name in names:
            held = self._live_holders(name, now) if now is not None else self._holders.get(name)
            if not held and not self._waiting.get(name):
                self._slot_limits.pop(name, None)

    def _collect(self, now: float) -> None:
        """Drop dead holders, forget idle slots' limits, and delete idle buckets (their
        ``tat`` and queue passed) and windows (no time in their period, queue passed):
        a budget at rest answers as a new one does."""
        self._forget_idle(list(dict.fromkeys([*self._holders, *self._slot_limits])), now)
        idle_buckets = [
            name for name, (tat, queue) in self._buckets.items() if tat <= now and queue <= now
        ]
        for name in idle_buckets:
            del self._buckets[name]
        idle_windows = [
            name
            for name, (times, queue, period) in self._windows.items()
            if (not times or times[-1] <= now - period) and queue <= now
        ]
        for name in idle_windows:
            del self._windows[name]

    # -- waiter lists --------------------------------------------------------------------

    async def park(self, waits: Sequence[Wait], *, now: float, reserve: float) -> list[str]:
        """Add each task to its list (or move it there to its new group and rank), then
        wake the waiters of any named slot with room, each a holder until ``now + reserve``."""
        for wait in waits:
            self._waiting.setdefault(wait.name, _WaiterList()).add(wait)
        names = dict.fromkeys(wait.name for wait in waits)
        woken = [task_id for name in names for task_id in self._wake_slot(name, now, reserve)]
        self._forget_idle(names, now)
        return woken

    async def wake_ready(self, *, now: float, limit: int, reserve: float) -> list[str]:
        """Wake the waiters of every slot with room, at most ``limit`` in all, each a
        holder until ``now + reserve``; then drop what no longer matters (``_collect``)."""
        woken: list[str] = []
        for name in list(self._waiting):
            if len(woken) >= limit:
                break
            woken += self._wake_slot(name, now, reserve, limit - len(woken))
        self._collect(now)
        return woken

    async def unpark(self, names: Sequence[str], *, limit: int) -> list[str]:
        """Take up to ``limit`` waiters out of the named lists: list by list, each in its
        wake order."""
        names = list(dict.fromkeys(names))
        taken: list[str] = []
        for name in names:
            taken += self._take(name, limit - len(taken))
        self._forget_idle(names, None)
        return taken

    async def waiters(self) -> dict[str, int]:
        """How many tasks wait in each non-empty list."""
        return {name: len(waiting) for name, waiting in self._waiting.items() if waiting}

    def _wake_slot(
        self, name: str, now: float, reserve: float, limit: int | None = None
    ) -> list[str]:
        """Take out as many waiters of list ``name`` as its slot has room for (a pause's
        or a breaker's list has none); each holds the slot until ``now + reserve``, so the
        room it took is not given again before its admit (or before the reserve runs out)."""
        if not self._waiting.get(name):
            return []
        room = self._room(name, now)
        woken = self._take(name, room if limit is None else min(room, limit))
        if woken:
            holders = self._holders.setdefault(name, {})
            for task_id in woken:
                holders[task_id] = max(holders.get(task_id, now), now + reserve)
        return woken

    def _take(self, name: str, count: int) -> list[str]:
        """Remove and return the first ``count`` waiters of list ``name``; an emptied list
        goes, and with it its time and its groups' passes."""
        waiting = self._waiting.get(name)
        if not waiting or count <= 0:
            return []
        taken = waiting.take(count)
        if not waiting:
            del self._waiting[name]
        return taken

    # -- rules ---------------------------------------------------------------------------

    async def put_limits(self, limits: Sequence[Limit]) -> None:
        """Create or replace limits by name; the version grows."""
        self._limits.update((limit.name, limit) for limit in limits)
        self._version += 1

    async def remove_limits(self, names: Sequence[str]) -> list[bool]:
        """Remove limits by name; per name, whether it existed. The version grows."""
        removed = [self._limits.pop(name, None) is not None for name in names]
        self._version += 1
        return removed

    async def set_paused(self, patterns: Sequence[str], paused: bool) -> list[bool]:
        """Pause or resume patterns; per pattern, whether it changed. The version grows."""
        changed = []
        for pattern in patterns:
            changed.append((pattern in self._pauses) != paused)
            if paused:
                self._pauses.add(pattern)
            else:
                self._pauses.discard(pattern)
        self._version += 1
        return changed

    async def rules(self) -> Rules:
        """Every limit sorted by name and every paused pattern sorted, with the version."""
        limits = tuple(self._limits[name] for name in sorted(self._limits))
        return Rules(limits, tuple(sorted(self._pauses)), self._version)

    async def rules_version(self) -> int:
        """The version: 0 until the first rule is written."""
        return self._version
