"""The breaker scripts against ``atp.core.flow.breaker`` on a real Redis: over random
batches of outcomes, probes and resets across several breakers, with time jumping
irregularly across window boundaries, the Lua copy gives the states Python gives (the
conformance suite's ``Reference``: the arithmetic and the rule of rest every ledger
shares), to a few ulps. Breakers at rest leave no key behind; a bad batch is refused
whole, every key as it was; and a breaker's waiter list, like a pause's, has no room.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import astuple

import pytest
import redis.asyncio as aioredis

from atp.core.clock import ManualClock
from atp.core.errors import InvalidInput
from atp.core.flow.breaker import (
    Breaker,
    BreakerState,
    Circuit,
    breaker_key,
    breaker_waiters,
)
from atp.core.flow.rules import Slot
from atp.core.plugins import make_plugin_manager
from atp.core.ports import BreakerLedger, FlowLedger, Probe, Sample, Wait
from atp.core.settings import Settings
from atp.plugins.redis._breakers import REST_STEP
from atp.plugins.redis.keys import FlowKeys
from atp.sdk.conformance import unique
from atp.sdk.conformance._breaker_support import Reference

pytestmark = pytest.mark.integration

START = 1_750_000_000.25
POLICIES = (
    Breaker(ratio=0.5, window=10.0, min_volume=4, open_for=5.0),
    Breaker(ratio=1.0, window=1.0, min_volume=1, open_for=0.5),
    Breaker(ratio=0.3, window=7.0, min_volume=6, open_for=12.0),
    Breaker(ratio=0.7, window=0.25, min_volume=2, open_for=3.0),
)
TASKS = ("t1", "t2", "t3")
WORKERS = ("w1", "w2", "")


@pytest.fixture
async def store(url: str) -> AsyncIterator[BreakerLedger]:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock(START))
    assert isinstance(store, BreakerLedger)
    yield store
    await store.close()


@pytest.fixture
async def client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url.split("?")[0])
    yield client
    await client.aclose()


def same(got: BreakerState, expected: BreakerState) -> bool:
    """Equal, the floats to within a few ulps."""
    return all(
        a == pytest.approx(b, rel=1e-12, abs=1e-9) if isinstance(a, float) else a == b
        for a, b in zip(astuple(got), astuple(expected), strict=True)
    )


def later(chance: random.Random, now: float, window: float, state: BreakerState) -> float:
    """The time of the next call: the same, a little later, past two windows (the breaker
    comes to rest), or exactly on one of ``state``'s edges (where ``>=`` and ``>`` part):
    the end of its window or the next, its ``open_until``, its probe's ``probe_until``."""
    start = math.floor(now / window) * window
    edges = [start + window, start + 2 * window, state.window_start + 2 * window]
    edges += [state.window_start + window, state.open_until, state.probe_until]
    ahead = [edge for edge in edges if edge > now]
    return chance.choice(
        (
            now,
            now,
            now + chance.random() * 0.1,
            now + chance.random() * window,
            now + chance.random() * 5.0,
            now + 2 * window + chance.random() * window,
            chance.choice(ahead) if ahead else now,
            chance.choice(ahead) if ahead else now,
        )
    )


def outcomes(chance: random.Random) -> tuple[int, int]:
    roll = chance.random()
    if roll < 0.15:
        return 0, 0  # rolls the windows on, and only that
    if roll < 0.55:
        return 0, chance.randint(1, 4)  # a failing spell opens the breakers
    return chance.randint(0, 4), chance.choice((0, 0, 1, 2))


@pytest.mark.parametrize("seed", range(4))
async def test_the_scripts_answer_as_the_python_breaker(store: BreakerLedger, seed: int) -> None:
    chance = random.Random(seed)
    policies = {breaker_key("g", unique("s")): policy for policy in POLICIES}
    policies[breaker_key("other", "s")] = POLICIES[0]
    keys, model, now = list(policies), Reference(), START + chance.random()
    seen: Counter[str] = Counter()
    for turn in range(300):
        focus = chance.choice(keys)  # the breaker whose edges the time may land on
        state = model.states.get(focus, BreakerState(focus))
        now = later(chance, now, policies[focus].window, state)
        batch = [focus, *(chance.choice(keys) for _ in range(chance.randint(0, 3)))]
        roll = chance.random()
        if roll < 0.55:
            samples = [
                Sample(key, policies[key], *outcomes(chance), chance.choice(WORKERS))
                for key in batch
            ]
            got, expected = await store.observe(samples, now=now), model.observe(samples, now)
        elif roll < 0.95:
            probes = [
                Probe(
                    key,
                    policies[key],
                    chance.choice(TASKS),
                    now + chance.random() * 4,
                    chance.choice(WORKERS),
                )
                for key in batch
            ]
            got, expected = await store.probe(probes, now=now), model.probe(probes, now)
        else:
            flags = await store.reset_breakers(batch, now=now)
            assert flags == model.reset(batch, now), f"turn {turn}: reset {batch}"
            continue
        assert len(got) == len(expected)
        for one, other in zip(got, expected, strict=True):
            assert same(one, other), f"turn {turn} at {now!r}: {one} != {other}"
            seen[one.circuit] += 1
        listed, kept = await store.breakers(), model.listing(now)
        assert len(listed) == len(kept), f"turn {turn}"
        assert all(map(same, listed, kept)), f"turn {turn}"
    assert min(seen[c] for c in Circuit) >= 10, f"every circuit is exercised: {seen}"


async def keys_left(client: aioredis.Redis, flow: FlowKeys) -> list[bytes]:
    found = [key async for key in client.scan_iter(match=f"{flow.base}breaker*", count=1000)]
    return sorted(found)


async def test_breakers_at_rest_leave_no_key(
    store: BreakerLedger, client: aioredis.Redis, prefix: str
) -> None:
    flow, policy = FlowKeys(prefix), Breaker(window=10.0, min_volume=1, ratio=1.0)
    quiet = [Sample(breaker_key("g", f"s{i}"), policy, 3, 0) for i in range(REST_STEP + 10)]
    tripped = Sample(breaker_key("g", "down"), policy, 0, 1)
    states = await store.observe([*quiet, tripped], now=START)
    assert states[-1].circuit is Circuit.OPEN
    assert len(await keys_left(client, flow)) == len(quiet) + 2, "a hash each, and the index"
    later = START + 2 * policy.window
    last = max(s.key for s in quiet)  # equal scores are taken by name: this one comes last
    assert await store.probe([Probe(last, policy, "t", later + 1)], now=later) == [
        BreakerState(last)
    ], "one at rest reads as new before the walk over the index reaches it"
    assert len(await keys_left(client, flow)) == 10 - 1 + 2, (
        "the call forgot REST_STEP breakers at rest, and the one it met"
    )
    await store.reset_breakers([breaker_key("g", "none")], now=later)
    assert await keys_left(client, flow) == sorted(
        [flow.key("breakers").encode(), flow.breaker(tripped.key).encode()]
    ), "the next call forgot the rest; the open one stays"
    assert [s.key for s in await store.breakers()] == [tripped.key]
    assert await store.reset_breakers([tripped.key, tripped.key], now=later) == [True, False]
    assert await keys_left(client, flow) == []


GOOD = Breaker()


@pytest.mark.parametrize(
    "bad",
    [
        ("observe", [Sample("g/s", GOOD, -1, 0)], START),
        ("observe", [Sample("g/s", GOOD, 0, 1.5)], START),  # type: ignore[arg-type]
        ("observe", [Sample("g/s", GOOD, True, 0)], START),
        ("observe", [Sample("", GOOD, 1, 0)], START),
        ("observe", [Sample("g/s", None, 1, 0)], START),  # type: ignore[arg-type]
        ("observe", [Sample("g/s", GOOD, 1, 0)], math.nan),
        ("probe", [Probe("g/s", GOOD, "", START + 5)], START),
        ("probe", [Probe("g/s", GOOD, "t", math.inf)], START),
        ("probe", [Probe(7, GOOD, "t", START + 5)], START),  # type: ignore[arg-type]
        ("reset_breakers", [""], START),
        ("reset_breakers", ["g/s"], math.inf),
    ],
    ids=lambda bad: f"{bad[0]}:{bad[1]!r}:{bad[2]!r}",
)
async def test_a_bad_batch_is_refused_and_changes_nothing(
    store: BreakerLedger, client: aioredis.Redis, prefix: str, bad: tuple[str, list[object], float]
) -> None:
    flow, policy = FlowKeys(prefix), Breaker(window=10.0, min_volume=1, ratio=1.0)
    await store.observe([Sample("g/s", policy, 0, 1), Sample("g/t", policy, 2, 0)], now=START)
    before = [(key, await client.dump(key)) for key in await keys_left(client, flow)]
    method, items, now = bad
    good = {
        "observe": Sample("g/t", policy, 0, 5),
        "probe": Probe("g/s", policy, "t", START + 99),
        "reset_breakers": "g/s",
    }[method]
    with pytest.raises(InvalidInput):
        await getattr(store, method)([good, *items], now=now)
    after = [(key, await client.dump(key)) for key in await keys_left(client, flow)]
    assert after == before


async def test_a_breakers_waiter_list_has_no_room(store: BreakerLedger) -> None:
    assert isinstance(store, FlowLedger)
    name = breaker_waiters(breaker_key("g", unique("s")))
    waits = [Wait(name, f"t{i}") for i in range(3)]
    assert await store.park(waits, now=START, reserve=30.0) == [], "no room opens it"
    assert await store.wake_ready(now=START + 60, limit=10, reserve=30.0) == []
    assert await store.waiters() == {name: 3}
    assert await store.unpark([name], limit=2) == ["t0", "t1"], "only unpark takes them out"
    slot = Slot(unique("slot"), 5)
    assert await store.park([Wait(slot.name, "free")], now=START, reserve=30.0) == ["free"], (
        "while a slot's list with room wakes its waiter at once"
    )
