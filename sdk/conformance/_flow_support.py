"""Builders and the reference meter the FlowLedger checks share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from atp.core.flow.meter import bucket_admit, window_admit
from atp.core.flow.rules import Bucket, Gates, Slot, Window
from atp.core.ports import Admission, FlowLedger, TaskStore, Verdict
from atp.sdk.conformance._store_support import LEASE
from atp.sdk.conformance._support import unique

TIME = 1e-6
"""How far a ledger's times may stray from the meter's (a server may round them)."""


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
    assert await ledger.park([(name, t) for t in reversed(waiting)], now=now) == []
    return waiting


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
