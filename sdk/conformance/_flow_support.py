"""Builders and the reference meter the FlowLedger checks share."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from atp.core.flow.meter import bucket_admit, window_admit
from atp.core.flow.rules import Bucket, Gates, Slot, Window
from atp.core.ports import Admission, FlowLedger, Held, TaskStore, Verdict, Wait
from atp.sdk.conformance._store_support import LEASE
from atp.sdk.conformance._support import unique

TIME = 1e-6
"""How far a ledger's times may stray from the meter's (a server may round them)."""

RESERVE = 30.0
"""How long a woken waiter holds its slot before its admit (``release_slots`` and co.)."""


class Ledger(FlowLedger, TaskStore, Protocol):
    """What the suite's fixture provides: both ports on one object."""


def ask(
    task_id: str,
    now: float,
    *,
    slots: Sequence[Slot] = (),
    buckets: Sequence[Bucket] = (),
    windows: Sequence[Window] = (),
    lease: float = LEASE,
) -> Admission:
    """An admission through the given gates, holding slots until ``now + lease``."""
    gates = Gates(tuple(slots), tuple(buckets), tuple(windows))
    return Admission(task_id, gates, lease_until=now + lease)


async def admit_one(ledger: FlowLedger, request: Admission, now: float) -> Verdict:
    [verdict] = await ledger.admit([request], now=now)
    return verdict


async def fill(ledger: FlowLedger, slot: Slot, now: float, lease: float = LEASE) -> list[str]:
    """Take every place of ``slot`` with new holders; their ids."""
    holders = [unique("task") for _ in range(slot.limit)]
    verdicts = await ledger.admit(
        [ask(t, now, slots=[slot], lease=lease) for t in holders], now=now
    )
    assert all(v.admitted for v in verdicts), verdicts
    return holders


async def queue_up(ledger: FlowLedger, name: str, now: float, count: int) -> list[str]:
    """Park ``count`` new waiters on list ``name``, highest id first (nothing may wake);
    their ids in the order they must come out: lowest first."""
    waiting = sorted(unique("task") for _ in range(count))
    await line_up(ledger, [Wait(name, t) for t in reversed(waiting)], now)
    return waiting


async def line_up(ledger: FlowLedger, waits: Sequence[Wait], now: float) -> None:
    """Park ``waits``, none of which may wake (their lists are full or paused)."""
    assert await ledger.park(waits, now=now, reserve=RESERVE) == [], "a full slot must wake nobody"


def group_of(name: str, group: str, weight: int, count: int) -> list[Wait]:
    """``count`` new waiters of list ``name`` in ``group``, rank 0, in no particular order."""
    return [Wait(name, unique("task"), group, weight) for _ in range(count)]


async def take_turns(
    ledger: FlowLedger, slot: Slot, holder: str, count: int, now: float
) -> tuple[list[str], str]:
    """Wake ``count`` waiters of the full slot ``slot`` one at a time: give the holder's
    place back (room 1: one waiter comes out), then admit that waiter as the new holder.
    The ids in the order they came out, and the last holder."""
    woken: list[str] = []
    for _ in range(count):
        out = await ledger.release_slots([Held(holder, (slot.name,))], now=now, reserve=RESERVE)
        assert len(out) == 1, f"room 1 wakes exactly one waiter, got {out}"
        holder = out[0]
        assert (await admit_one(ledger, ask(holder, now, slots=[slot]), now)).admitted
        woken.append(holder)
    return woken, holder


async def sweep_turns(ledger: FlowLedger, slot: Slot, count: int, now: float) -> list[str]:
    """Wake ``count`` waiters of ``slot`` one at a time through ``wake_ready``: each woken
    task is admitted with a 1 s lease, and the next sweep comes 2 s later, when that
    lease has passed (and the 1 s reserve of its waking). The slot's holder must have a
    lease under 2 s. The ids woken."""
    woken: list[str] = []
    for _ in range(count):
        now += 2.0
        out = await ledger.wake_ready(now=now, limit=10, reserve=1.0)
        assert len(out) == 1, f"room 1 wakes exactly one waiter, got {out}"
        assert (await admit_one(ledger, ask(out[0], now, slots=[slot], lease=1.0), now)).admitted
        woken += out
    return woken


def random_wait(chance: random.Random, name: str, order: WakeOrder) -> Wait:
    """A new waiter of list ``name`` in group a, b or c, or (one time in three) one of
    ``order``'s waiting tasks parked again in its group; weight 1, 2 or 4 (so passes add
    up exactly), rank 0, 1 or 2 (so ranks tie)."""
    weight, rank = chance.choice([1, 2, 4]), float(chance.randint(0, 2))
    if order.waiting and chance.random() < 1 / 3:
        task_id = chance.choice(sorted(order.waiting))
        return Wait(name, task_id, order.waiting[task_id][0], weight, rank)
    return Wait(name, unique("task"), chance.choice("abc"), weight, rank)


def groups_of(woken: Sequence[str], waits: Sequence[Wait]) -> list[str]:
    """The group of each woken id, in order."""
    group = {wait.task_id: wait.group for wait in waits}
    return [group[task_id] for task_id in woken]


@dataclass
class WakeOrder:
    """The wake order one waiter list owes (the FlowLedger docstring), over plain state:
    stride over groups (lowest pass, then group name; the list's time is the pass the
    served group reached), then lowest rank, then lowest id."""

    time: float = 0.0
    passes: dict[str, float] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> group, rank

    def park(self, wait: Wait) -> None:
        before = self.waiting.get(wait.task_id)
        self.waiting[wait.task_id] = (wait.group, wait.rank)
        if before is not None:
            self._leave_if_done(before[0])
        self.passes.setdefault(wait.group, self.time)
        self.weights[wait.group] = wait.weight

    def take(self) -> str:
        group = min(self.passes, key=lambda name: (self.passes[name], name))
        mine = [task_id for task_id, (of, _) in self.waiting.items() if of == group]
        task_id = min(mine, key=lambda task_id: (self.waiting[task_id][1], task_id))
        del self.waiting[task_id]
        self.passes[group] += 1 / self.weights[group]
        self.time = self.passes[group]
        self._leave_if_done(group)
        return task_id

    def _leave_if_done(self, group: str) -> None:
        if all(of != group for of, _ in self.waiting.values()):
            del self.passes[group], self.weights[group]
        if not self.waiting:
            self.time = 0.0


@dataclass
class Meter:
    """The answers a ledger owes, from ``meter`` over plain state: every bucket and window
    of a request is asked; a refusal moves the refusers' queues and takes nothing; an
    admission commits them all. An admitted verdict carries no ``retry_at``."""

    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    windows: dict[str, tuple[list[float], float]] = field(default_factory=dict)

    def admit(self, gates: Gates, now: float) -> Verdict:
        refusals: list[float] = []
        tats: dict[str, float] = {}
        for bucket in gates.buckets:
            tat, queue = self.buckets.get(bucket.name, (0.0, 0.0))
            allowed, tats[bucket.name], queue, retry_at = bucket_admit(
                tat, queue, now, bucket.rate, bucket.burst
            )
            self.buckets[bucket.name] = (tat, queue)
            if not allowed:
                refusals.append(retry_at)
        lives: dict[str, list[float]] = {}
        for window in gates.windows:
            times, queue = self.windows.get(window.name, ([], 0.0))
            allowed, lives[window.name], queue, retry_at = window_admit(
                times, queue, now, window.count, window.period
            )
            self.windows[window.name] = (lives[window.name], queue)
            if not allowed:
                refusals.append(retry_at)
        if refusals:
            return Verdict(False, retry_at=max(refusals))
        for name, tat in tats.items():
            self.buckets[name] = (tat, self.buckets[name][1])
        for name, live in lives.items():
            self.windows[name] = ([*live, now], self.windows[name][1])
        return Verdict(True)


def same_verdicts(got: Sequence[Verdict], expected: Sequence[Verdict]) -> bool:
    """Equal, with retry times compared to within ``TIME``."""
    return len(got) == len(expected) and all(map(same_verdict, got, expected))


def same_verdict(got: Verdict, expected: Verdict) -> bool:
    if (got.admitted, got.wait_for) != (expected.admitted, expected.wait_for):
        return False
    if got.retry_at is None or expected.retry_at is None:
        return got.retry_at == expected.retry_at
    return abs(got.retry_at - expected.retry_at) <= TIME
