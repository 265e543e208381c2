"""The memory breaker ledger's state does not grow with the subjects that ever reported: a
closed breaker at rest is forgotten by the next call, and so is its entry in the heap of
rest times, however often its rest time moved."""

from __future__ import annotations

from atp.core.flow.breaker import Breaker, breaker_key
from atp.core.ports import Sample
from atp.plugins.memory._breakers import MemoryBreakers

T0 = 1_800_000_000.0  # the start of a fixed window of 60 s
POLICY = Breaker(ratio=0.5, window=60.0, min_volume=4, open_for=30.0)
KEYS = 1000


def sizes(ledger: MemoryBreakers) -> tuple[int, int, int]:
    return len(ledger._breakers), len(ledger._rests), len(ledger._resting)


async def test_breakers_at_rest_are_forgotten() -> None:
    ledger = MemoryBreakers()
    keys = [breaker_key("g", f"subject.{n}") for n in range(KEYS)]
    await ledger.observe([Sample(key, POLICY, 1, 0) for key in keys], now=T0 + 5)
    await ledger.observe([Sample(keys[0], POLICY, 0, 4)], now=T0 + 6)  # opens: kept
    counting = sizes(ledger)
    await ledger.observe([Sample(keys[1], POLICY, 1, 0)], now=T0 + 2 * POLICY.window)
    assert counting[:2] == (KEYS, KEYS - 1), "the open one has no rest time"
    assert sizes(ledger)[:2] == (2, 1)
    assert [state.key for state in await ledger.breakers()] == sorted(keys[:2])


async def test_the_heap_of_rest_times_stays_bounded() -> None:
    ledger = MemoryBreakers()
    key = breaker_key("g", "subject")
    for step in range(KEYS):  # each report in a new window moves the rest time on
        await ledger.observe([Sample(key, POLICY, 1, 0)], now=T0 + step * POLICY.window / 2)
    assert sizes(ledger)[:2] == (1, 1)
    assert sizes(ledger)[2] <= 2 * 1 + 64 + 1


async def test_a_reset_breaker_is_forgotten() -> None:
    ledger = MemoryBreakers()
    key = breaker_key("g", "subject")
    await ledger.observe([Sample(key, POLICY, 0, 4)], now=T0)
    assert await ledger.reset_breakers([key], now=T0 + 1) == [True]
    assert sizes(ledger)[:2] == (0, 0)
