"""The worker's one timer for every attempt, on the ManualClock."""

import asyncio

import pytest

from atp.core.clock import ManualClock
from atp.core.worker.deadlines import Deadlines


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(clock: ManualClock) -> tuple[Deadlines[str], list[str]]:
    expired: list[str] = []
    return Deadlines(clock, expired.append), expired


async def test_items_expire_at_their_deadline_in_order_across_timeout_lengths(clock):
    deadlines, expired = make(clock)
    sweep = asyncio.create_task(deadlines.run())
    deadlines.add("slow", 10.0)
    deadlines.add("fast", 2.0)  # shorter than the planned wake-up: the sweep wakes earlier
    await clock.advance(1.9)
    assert expired == []
    await clock.advance(0.2)
    assert expired == ["fast"]
    await clock.advance(8.0)
    assert expired == ["fast", "slow"]
    assert len(deadlines) == 0
    sweep.cancel()


async def test_a_removed_item_never_expires(clock):
    deadlines, expired = make(clock)
    sweep = asyncio.create_task(deadlines.run())
    deadlines.add("done", 1.0)
    deadlines.add("hung", 1.0)
    deadlines.remove("done", 1.0)
    deadlines.remove("never-added", 5.0)
    await clock.advance(2.0)
    assert expired == ["hung"]
    sweep.cancel()


def test_sweep_returns_the_next_deadline_and_drops_empty_queues(clock):
    deadlines, expired = make(clock)
    deadlines.add("a", 1.0)
    deadlines.add("b", 3.0)
    start = clock.now()
    assert deadlines.sweep(start + 1.0) == start + 3.0
    assert expired == ["a"]
    assert deadlines.sweep(start + 3.0) == float("inf")
    assert expired == ["a", "b"]
    assert len(deadlines) == 0
