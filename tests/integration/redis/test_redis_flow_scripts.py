"""The flow scripts' arithmetic against ``atp.core.flow.meter``, on a real Redis: the Lua
copies of GCRA and the sliding window must give the very same floats (times travel as
"%.17g", which a double survives), over a few hundred random sequences of admissions.
The ledger's keys do not grow with the number of keys: slots given back or left by dead
holders leave no field and no key. The wake order (ADR 0039) against the suite's plain
model, over random parks, moves and unparks, where Lua's passes must tie exactly when
Python's do; a waiter list's keys go with its waiters, and no two (list, group) pairs
share a key. And debounce on the fused path, where the task replaced may be READY in its
stream.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from atp.core.clock import ManualClock
from atp.core.flow.meter import bucket_admit, window_admit
from atp.core.flow.rules import Bucket, Gates, Slot, Window, pause_waiters
from atp.core.model import Dedup, DedupMode, State
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Admission, Created, FlowLedger, FusingStore, Held, Verdict, Wait
from atp.core.settings import Settings
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis._ledger import GC_STEP, _pack_admission, _verdict
from atp.plugins.redis._records import num
from atp.plugins.redis.keys import FlowKeys, TransportKeys
from atp.sdk.conformance import unique
from atp.sdk.conformance._flow_support import WakeOrder
from atp.sdk.conformance._support import make_task

pytestmark = pytest.mark.integration

START = 1_750_000_000.0
RESERVE = 30.0  # how long a woken waiter holds its slot before its admit
STEPS = (0.0, 0.0, 0.001, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 30.0)
KEYS = 1000


@pytest.fixture
async def client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url.split("?")[0])
    yield client
    await client.aclose()


async def admit(client: aioredis.Redis, flow: FlowKeys, gates: Gates, now: float) -> Verdict:
    keys, args = [flow.key("slots")], [num(now)]
    _pack_admission(flow, Admission(unique("task"), gates, now + 30), keys, args)
    code, value = await Scripts.run(client, "flow_admit", keys, args)
    return _verdict(code, value)


def expected_bucket(state: dict[str, float], bucket: Bucket, now: float) -> Verdict:
    allowed, tat, queue, retry_at = bucket_admit(
        state["tat"], state["queue"], now, bucket.rate, bucket.burst
    )
    state["tat"], state["queue"] = tat, queue
    return Verdict(True) if allowed else Verdict(False, retry_at=retry_at)


@pytest.mark.parametrize("seed", range(4))
async def test_the_bucket_script_answers_as_the_meter_exactly(
    client: aioredis.Redis, prefix: str, seed: int
) -> None:
    chance = random.Random(seed)
    flow = FlowKeys(prefix)
    for _ in range(60):
        rate = chance.randint(1, 50) / chance.choice([1, 3, 7, 60])
        bucket = Bucket(unique("bucket"), rate, chance.randint(1, 5))
        state, now = {"tat": 0.0, "queue": 0.0}, START + chance.random() * 1000
        for step in range(25):
            now += chance.choice(STEPS)
            got = await admit(client, flow, Gates(buckets=(bucket,)), now)
            expected = expected_bucket(state, bucket, now)
            assert got == expected, f"{bucket} step {step} at {now!r}"


@pytest.mark.parametrize("seed", range(2))
async def test_the_window_script_answers_as_the_meter_exactly(
    client: aioredis.Redis, prefix: str, seed: int
) -> None:
    chance = random.Random(seed)
    flow = FlowKeys(prefix)
    for _ in range(50):
        window = Window(
            unique("window"), chance.randint(1, 6), chance.choice([0.5, 1.0, 7.0, 60.0])
        )
        times: list[float] = []
        queue, now = 0.0, START + chance.random() * 1000
        for step in range(25):
            now += chance.choice(STEPS)
            got = await admit(client, flow, Gates(windows=(window,)), now)
            allowed, times, queue, retry_at = window_admit(
                times, queue, now, window.count, window.period
            )
            if allowed:
                times = [*times, now]
            expected = Verdict(True) if allowed else Verdict(False, retry_at=retry_at)
            assert got == expected, f"{window} step {step} at {now!r}"


async def test_an_idle_bucket_and_window_expire(client: aioredis.Redis, prefix: str) -> None:
    flow = FlowKeys(prefix)
    bucket, window = Bucket(unique("bucket"), 2.0, 3), Window(unique("window"), 2, 10.0)
    gates = Gates(buckets=(bucket,), windows=(window,))
    assert (await admit(client, flow, gates, START)).admitted
    bucket_ttl = await client.pttl(flow.bucket(bucket.name))
    window_ttl = await client.pttl(flow.window(window.name))
    assert 1000 < bucket_ttl <= 1500, "its tat (START + 0.5) matters for 0.5 s, plus 1 s slack"
    assert 10_000 < window_ttl <= 11_000, "its time matters for the period, plus 1 s slack"
    assert abs(await client.pttl(flow.window_queue(window.name)) - window_ttl) <= 50


@pytest.fixture
async def ledger(url: str) -> AsyncIterator[FlowLedger]:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock(START))
    assert isinstance(store, FlowLedger)
    yield store
    await store.close()


def gates_of(key: int) -> Gates:
    """A slot and a bucket of their own for one key, as a per-key rule gives."""
    name = f"k:customer:{key}"
    return Gates((Slot(name, 2),), (Bucket(name, 1.0, 1),))


async def slot_state(client: aioredis.Redis, flow: FlowKeys) -> tuple[int, list[bytes]]:
    """The fields of the slot limits' hash and every slot holder key left."""
    keys = [key async for key in client.scan_iter(match=f"{flow.base}slot:*", count=1000)]
    return await client.hlen(flow.key("slots")), keys


async def test_keys_admitted_and_released_leave_no_slot_field_or_key(
    ledger: FlowLedger, client: aioredis.Redis, prefix: str
) -> None:
    flow = FlowKeys(prefix)
    requests = [Admission(f"t{key}", gates_of(key), START + 30) for key in range(KEYS)]
    assert await ledger.admit(requests, now=START) == [Verdict(True)] * KEYS
    held = [Held(r.task_id, tuple(s.name for s in r.gates.slots)) for r in requests]
    assert await ledger.release_slots(held, now=START + 1, reserve=RESERVE) == []
    assert await slot_state(client, flow) == (0, []), "forgotten as soon as given back"
    assert await ledger.wake_ready(now=START + 2, limit=100, reserve=RESERVE) == []
    assert await slot_state(client, flow) == (0, [])
    assert not await client.exists(flow.key("gc")), "a walk that reached the end forgets it"
    ttls = [await client.pttl(flow.bucket(f"k:customer:{key}")) for key in range(KEYS)]
    assert all(ttl > 0 for ttl in ttls), "a bucket goes by itself once at rest"


async def test_slots_of_dead_holders_and_refused_tasks_go_within_a_few_sweeps(
    ledger: FlowLedger, client: aioredis.Redis, prefix: str
) -> None:
    flow = FlowKeys(prefix)
    dead = [Admission(f"d{key}", gates_of(key), START + 5) for key in range(KEYS)]
    assert await ledger.admit(dead, now=START) == [Verdict(True)] * KEYS
    refused = [Admission(f"r{key}", gates_of(key), START + 5) for key in range(KEYS)]
    verdicts = await ledger.admit(refused, now=START + 0.5)
    assert all(v.retry_at is not None for v in verdicts), "the buckets refuse: no slot taken"
    kept = Slot(unique("slot"), 1)
    live = Admission("live", Gates((kept,)), START + 60)
    assert await ledger.admit([live], now=START) == [Verdict(True)]
    sweeps = 0
    while (await slot_state(client, flow))[0] > 1:
        assert await ledger.wake_ready(now=START + 30, limit=100, reserve=RESERVE) == []
        sweeps += 1
        assert sweeps <= 4 * KEYS // GC_STEP, "each sweep walks on through the hash"
    fields, keys = await slot_state(client, flow)
    assert (fields, keys) == (1, [flow.slot(kept.name).encode()]), "a live holder's slot stays"


WEIGHTS = (1, 2, 3, 6, 7, 1000)
"""Weights whose strides (1/3, 1/6, 1/7...) add up to passes that tie only if every sum is
computed as Python computes it."""


@pytest.mark.parametrize("seed", range(3))
async def test_the_wake_order_is_the_models_over_random_parks_and_unparks(
    ledger: FlowLedger, seed: int
) -> None:
    chance = random.Random(seed)
    name, model = pause_waiters(f"{unique('flow')}.work"), WakeOrder()
    groups, tasks = ["", "a", "a:b", "b", "c"], [unique("task") for _ in range(40)]
    for step in range(300):
        if chance.random() < 0.55:
            batch = [
                Wait(
                    name,
                    chance.choice(tasks),
                    chance.choice(groups),
                    chance.choice(WEIGHTS),
                    float(chance.choice((0, 0, 5, -10, 2.5))),
                )
                for _ in range(chance.randint(1, 4))
            ]
            assert await ledger.park(batch, now=START, reserve=RESERVE) == [], (
                "a pause list has no room"
            )
            for wait in batch:
                model.park(wait)
        else:
            limit = chance.randint(1, 5)
            expected = [model.take() for _ in range(min(limit, len(model.waiting)))]
            got = await ledger.unpark([name], limit=limit)
            assert got == expected, f"step {step}"
        assert (await ledger.waiters()).get(name, 0) == len(model.waiting)


async def list_keys(client: aioredis.Redis, flow: FlowKeys) -> list[bytes]:
    """Every key of every waiter list left, and the registry of lists."""
    found = [
        key
        for kind in ("members", "groups", "list", "queue")
        async for key in client.scan_iter(match=f"{flow.base}{kind}:*", count=1000)
    ]
    return sorted(found) + ([b"waiting"] if await client.exists(flow.key("waiting")) else [])


async def hand_over(ledger: FlowLedger, slot: Slot, holder: str) -> list[str]:
    """Give ``holder``'s place in ``slot`` back; the one waiter woken becomes the holder."""
    woken = await ledger.release_slots([Held(holder, (slot.name,))], now=START, reserve=RESERVE)
    for task_id in woken:
        admission = Admission(task_id, Gates((slot,)), START + 30)
        assert await ledger.admit([admission], now=START) == [Verdict(True)]
    return woken


async def test_a_list_keeps_keys_only_for_what_waits(
    ledger: FlowLedger, client: aioredis.Redis, prefix: str
) -> None:
    flow = FlowKeys(prefix)
    slot = Slot(unique("slot"), 1)
    holder = Admission("holder", Gates((slot,)), START + 30)
    assert await ledger.admit([holder], now=START) == [Verdict(True)]
    waits = [Wait(slot.name, f"t{i}", group, 3, float(i)) for i, group in enumerate("aab")]
    assert await ledger.park(waits, now=START, reserve=RESERVE) == []
    assert await client.hgetall(flow.wait_list(slot.name)) == {b"w:a": b"3", b"w:b": b"3"}
    assert await hand_over(ledger, slot, "holder") == ["t0"], "a and b tie at 0: a first"
    assert await ledger.park([Wait(slot.name, "t1", "b", 2, 1.0)], now=START, reserve=RESERVE) == []
    passes = await client.zrange(flow.groups(slot.name), 0, -1, withscores=True)
    assert passes == [(b"b", 0.0)], "t1 moved to group b: a waits no more, its pass went"
    assert await client.hgetall(flow.wait_list(slot.name)) == {
        b"time": b"0.33333333333333331",
        b"w:b": b"2",
    }
    assert not await client.exists(flow.queue(slot.name, "a"))
    assert await ledger.waiters() == {slot.name: 2}
    assert await hand_over(ledger, slot, "t0") == ["t1"]
    assert await hand_over(ledger, slot, "t1") == ["t2"]
    assert await list_keys(client, flow) == [], "the list forgot its time, passes and weights"
    assert await hand_over(ledger, slot, "t2") == []
    assert await slot_state(client, flow) == (0, [])


async def test_no_two_lists_and_groups_share_a_key(ledger: FlowLedger, prefix: str) -> None:
    flow = FlowKeys(prefix)
    one, two = pause_waiters("x.a:b"), pause_waiters("x.a")
    assert flow.queue(one, "c") != flow.queue(two, "b:c")
    waits = [Wait(one, "t1", "c"), Wait(two, "t2", "b:c"), Wait(two, "t3", "b:c", rank=-1.0)]
    assert await ledger.park(waits, now=START, reserve=RESERVE) == []
    assert await ledger.waiters() == {one: 1, two: 2}
    assert await ledger.unpark([one], limit=5) == ["t1"]
    assert await ledger.unpark([two], limit=5) == ["t3", "t2"]


async def test_unpark_merges_lists_by_their_next_waiters_rank(ledger: FlowLedger) -> None:
    one, two = (pause_waiters(f"{unique('flow')}.work") for _ in range(2))
    waits = [
        Wait(one, "a1", "a", rank=1.0),
        Wait(one, "b1", "b", rank=0.0),
        Wait(two, "c1", "c", rank=0.5),
        Wait(two, "c2", "c", rank=3.0),
    ]
    assert await ledger.park(waits, now=START, reserve=RESERVE) == []
    assert await ledger.unpark([one, two], limit=3) == ["c1", "a1", "b1"], (
        "list one owes a1 first (group a, the lower name at pass 0): its rank 1 is behind"
        " c1's 0.5 and ahead of c2's 3; then b1"
    )


async def test_wake_ready_serves_the_slot_whose_next_waiter_ranks_lowest(
    ledger: FlowLedger,
) -> None:
    slots = [Slot(unique("slot"), 1) for _ in range(2)]
    holders = [Admission(f"h{i}", Gates((slot,)), START + 1) for i, slot in enumerate(slots)]
    assert await ledger.admit(holders, now=START) == [Verdict(True)] * 2
    waits = [Wait(slots[0].name, "z", rank=5.0), Wait(slots[1].name, "y", rank=7.0)]
    waits += [Wait(slots[1].name, "x", rank=2.0)]
    assert await ledger.park(waits, now=START, reserve=RESERVE) == []
    assert await ledger.wake_ready(now=START + 2, limit=1, reserve=RESERVE) == ["x"]
    again = Admission("x", Gates((slots[1],)), START + 30)
    assert await ledger.admit([again], now=START + 2) == [Verdict(True)]
    assert await ledger.wake_ready(now=START + 2, limit=5, reserve=RESERVE) == ["z"], (
        "x took slot 1's room"
    )


async def test_debounce_on_the_fused_path_cancels_a_task_of_its_own_batch(
    client: aioredis.Redis, url: str, prefix: str
) -> None:
    manager = make_plugin_manager()
    store = manager.make_store(url, Settings(), ManualClock(START))
    transport = manager.make_transport(url, Settings(), ManualClock(START))
    try:
        assert isinstance(store, FusingStore)
        assert store.fuse(transport)
        subject, debounce = f"{unique('flow')}.work", Dedup(DedupMode.DEBOUNCE, 5.0)
        first, second = (
            make_task(subject, START, idempotency_key="k", dedup=debounce) for _ in range(2)
        )
        created = await store.create_and_publish(
            [first, second], now=START, idempotency_window=60.0, ready_until=START + 30
        )
        assert created == [
            Created(first.id, True, START),
            Created(second.id, True, START, replaced=first.id),
        ]
        records = await store.get([first.id, second.id])
        assert [r.state if r else None for r in records] == [State.CANCELLED, State.READY]
        assert await store.counts() == {(subject, State.CANCELLED): 1, (subject, State.READY): 1}
        assert await client.zrange(f"{prefix}:{{s0}}:ready", 0, -1) == [second.id.encode()]
        assert await client.xlen(TransportKeys(prefix).stream(subject)) == 2
    finally:
        await transport.close()
        await store.close()
