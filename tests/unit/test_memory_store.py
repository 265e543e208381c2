"""What only the in-process store does: copies, lazy indexes, paging. The contract is elsewhere."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from atp.core.errors import ConfigError, FencedOut, InvalidInput
from atp.core.model import State, Task, TaskRecord
from atp.core.ports import Created, Fence, Outcome, Requeue, TaskQuery
from atp.core.settings import Settings
from atp.plugins.memory import MemoryStore

NOW = 1_000.0
WINDOW = 3_600.0


def task(n: int, **fields: Any) -> Task:
    fields.setdefault("subject", "orders.close")
    return Task(id=f"t{n:04d}", payload={"n": n}, **fields)


async def create(
    store: MemoryStore, tasks: list[Task], now: float = NOW, ready: bool = False
) -> list[Created]:
    return await store.create(
        tasks, now=now, idempotency_window=WINDOW, ready_until=now + 60 if ready else None
    )


async def test_payloads_are_copied_on_the_way_in():
    store = MemoryStore()
    payload = {"items": [1, 2]}
    headers = {"traceparent": "x"}
    await create(store, [Task(id="a", subject="s", payload=payload, headers=headers)])
    payload["items"].append(3)
    headers["traceparent"] = "y"
    (record,) = await store.get(["a"])
    assert record is not None
    assert (record.task.payload, dict(record.task.headers)) == (
        {"items": [1, 2]},
        {"traceparent": "x"},
    )


async def test_a_payload_that_is_not_json_creates_none_of_the_batch():
    store = MemoryStore()
    with pytest.raises(InvalidInput):
        await create(store, [task(1), Task(id="b", subject="s", payload={"x": object()})])
    assert await store.get(["t0001"]) == [None]
    assert await store.counts() == {}


async def test_a_result_that_is_not_json_applies_none_of_the_batch():
    store = MemoryStore()
    await create(store, [task(1), task(2)], ready=True)
    await store.claim(["t0001", "t0002"], owner="w", now=NOW, lease_until=NOW + 30)
    good = Outcome("t0001", "w", State.SUCCEEDED, NOW, result={"ok": True})
    bad = Outcome("t0002", "w", State.SUCCEEDED, NOW, result={1, 2})
    with pytest.raises(InvalidInput):
        await store.finish([good, bad])
    records = await store.get(["t0001", "t0002"])
    assert [r.state for r in records if r is not None] == [State.RUNNING] * 2


async def test_an_existing_id_is_not_created_again():
    store = MemoryStore()
    first = await create(store, [task(1)])
    again = await create(store, [task(1, subject="other.subject"), task(1)])
    assert [c.created for c in first + again] == [True, False, False]
    (record,) = await store.get(["t0001"])
    assert record is not None
    assert record.subject == "orders.close"


async def test_the_window_of_the_current_call_decides_and_prune_forgets_closed_keys():
    store = MemoryStore()
    await create(store, [task(1, idempotency_key="k")])
    shorter = await store.create([task(2, idempotency_key="k")], now=NOW + 10, idempotency_window=5)
    assert shorter[0].created  # the key is older than this call's window: replaced
    assert await store.prune(finished_before=0, now=NOW + 10 + 5, limit=10) == 0
    fresh = await store.create([task(3, idempotency_key="k")], now=NOW + 16, idempotency_window=1)
    assert fresh[0].created


async def test_a_released_task_is_taken_again_once():
    store = MemoryStore()
    await create(store, [task(1), task(2)])
    first = await store.take_due(now=NOW, limit=10, ready_until=NOW + 60)
    await store.release(["t0001"], now=NOW)
    await store.release(["t0001"], now=NOW)  # SCHEDULED already: untouched
    again = await store.take_due(now=NOW, limit=10, ready_until=NOW + 60)
    assert [t.id for t in first] == ["t0001", "t0002"]
    assert [t.id for t in again] == ["t0001"]
    assert await store.take_due(now=NOW, limit=10, ready_until=NOW + 60) == []


async def test_redispatch_everything_pages_through_every_ready_task():
    store = MemoryStore()
    await create(store, [task(n) for n in range(5)], ready=True)
    seen = []
    for stamp in (1, 2, 3):
        page = await store.redispatch(
            now=NOW, limit=2, ready_until=NOW + 100 + stamp, everything=True
        )
        seen += [t.id for t in page]
    assert seen == ["t0000", "t0001", "t0002", "t0003", "t0004", "t0000"]


async def test_redispatch_with_an_unchanged_stamp_returns_each_task_once():
    store = MemoryStore()
    await create(store, [task(1), task(2)], ready=True)
    for _ in range(3):
        page = await store.redispatch(now=NOW, limit=5, ready_until=NOW + 60, everything=True)
        assert [t.id for t in page] == ["t0001", "t0002"]


async def test_recover_ends_a_task_whose_cancel_was_requested():
    store = MemoryStore()
    await create(store, [task(1)], ready=True)
    await store.claim(["t0001"], owner="w", now=NOW, lease_until=NOW + 30)
    await store.cancel(["t0001"], now=NOW + 1)
    (recovered,) = await store.recover(now=NOW + 30, limit=10, default_max_attempts=3)
    assert (recovered.state, recovered.finished_at) == (State.CANCELLED, NOW + 30)
    assert recovered.last_error is not None
    assert recovered.last_error.kind == "lease"


async def test_query_pages_newest_first_across_out_of_order_ids_and_purges():
    store = MemoryStore()
    await create(store, [task(n) for n in (5, 1, 9, 3, 7)])
    await create(store, [task(4), task(8)])
    dead = Outcome("t0007", "w", State.DEAD, NOW)
    await store.take_due(now=NOW, limit=100, ready_until=NOW + 60)
    await store.claim(["t0007"], owner="w", now=NOW, lease_until=NOW + 30)
    await store.finish([dead])
    assert await store.purge(["t0007", "t0007", "t0004"]) == 1
    pages, cursor = [], None
    for _ in range(4):
        page = await store.query(TaskQuery(cursor=cursor, limit=2))
        pages.append([r.id for r in page.items])
        if (cursor := page.next_cursor) is None:
            break
    assert pages == [["t0009", "t0008"], ["t0005", "t0004"], ["t0003", "t0001"]]


async def test_query_filters_by_pattern_and_state():
    store = MemoryStore()
    await create(store, [task(1), task(2, subject="sms.send"), task(3, subject="orders.refund")])
    await store.cancel(["t0003"], now=NOW)
    page = await store.query(TaskQuery(subject="orders.*", states=frozenset({State.SCHEDULED})))
    assert ([r.id for r in page.items], page.next_cursor) == (["t0001"], None)
    with pytest.raises(InvalidInput):
        await store.query(TaskQuery(subject="orders.>.x"))
    with pytest.raises(InvalidInput):
        await store.query(TaskQuery(limit=0))


async def test_index_heaps_stay_bounded_under_heartbeats():
    store = MemoryStore()
    await create(store, [task(1)], ready=True)
    await store.claim(["t0001"], owner="w", now=NOW, lease_until=NOW + 30)
    for beat in range(10_000):
        await store.heartbeat(["t0001"], owner="w", lease_until=NOW + 30 + beat)
    assert len(store._running._heap) < 2_100
    (recovered,) = await store.recover(now=NOW + 10_030, limit=10, default_max_attempts=3)
    assert recovered.id == "t0001"


async def test_fences_are_kept_per_name():
    store = MemoryStore()
    await store.take_due(now=NOW, limit=1, ready_until=NOW, fence=Fence("scheduler", 5))
    await store.take_due(now=NOW, limit=1, ready_until=NOW, fence=Fence("tier", 1))
    await store.recover(now=NOW, limit=1, default_max_attempts=3, fence=Fence("scheduler", 5))
    with pytest.raises(FencedOut):
        await store.redispatch(now=NOW, limit=1, ready_until=NOW, fence=Fence("scheduler", 4))


async def test_requeue_replaces_the_payload_with_a_private_copy():
    store = MemoryStore()
    await create(store, [task(1)], ready=True)
    await store.claim(["t0001"], owner="w", now=NOW, lease_until=NOW + 30)
    await store.finish([Outcome("t0001", "w", State.DEAD, NOW)])
    payload = {"fixed": True}
    (record,) = await store.requeue([Requeue("t0001", NOW + 5, payload, True)], now=NOW)
    payload["fixed"] = False
    assert record is not None
    assert (record.state, record.task.payload, record.task.run_at) == (
        State.SCHEDULED,
        {"fixed": True},
        NOW + 5,
    )


async def test_the_plugin_builds_a_new_store_per_url(plugin_manager, clock):
    first = plugin_manager.make_store("memory://", Settings(), clock)
    second = plugin_manager.make_store("MEMORY://tests", Settings(), clock)
    assert isinstance(first, MemoryStore)
    assert isinstance(second, MemoryStore)
    assert first is not second
    with pytest.raises(InvalidInput, match="memory://a\\?b"):
        plugin_manager.make_store("memory://a?b", Settings(), clock)
    with pytest.raises(ConfigError):
        plugin_manager.make_store("nowhere://x", Settings(), clock)


def records_after(found: list[TaskRecord | None]) -> list[TaskRecord]:
    return [record for record in found if record is not None]


# -- the lazy indexes agree with a scan of every record ---------------------------------


def _expected_due(records: list[TaskRecord], now: float, limit: int) -> list[str]:
    due = [r for r in records if r.state is State.SCHEDULED and r.task.run_at <= now]
    due.sort(key=lambda r: (r.task.run_at, -r.task.priority, r.id))
    return [r.id for r in due[:limit]]


def _expected_expired(records: list[TaskRecord], state: State, now: float, limit: int) -> list[str]:
    found = [r for r in records if r.state is state and (r.lease_until or 0.0) <= now]
    found.sort(key=lambda r: (r.lease_until or 0.0, r.id))
    return [r.id for r in found[:limit]]


async def _random_step(store: MemoryStore, rng: random.Random, ids: list[str], now: float) -> None:
    picked = rng.sample(ids, 5)
    action = rng.randrange(6)
    if action == 0:
        await store.release(picked, now=now)
    elif action == 1:
        await store.claim(
            picked, owner=rng.choice("ab"), now=now, lease_until=now + rng.randrange(1, 20)
        )
    elif action == 2:
        await store.heartbeat(
            picked, owner=rng.choice("ab"), lease_until=now + rng.randrange(1, 20)
        )
    elif action == 3:
        state = rng.choice([State.SUCCEEDED, State.SCHEDULED, State.DEAD])
        outcomes = [
            Outcome(i, rng.choice("ab"), state, now, run_at=now + rng.randrange(5)) for i in picked
        ]
        await store.finish(outcomes)
    elif action == 4:
        await store.cancel(picked[:1], now=now)
    else:
        await store.requeue([Requeue(i, now + rng.randrange(5)) for i in picked], now=now)


async def test_indexes_agree_with_a_full_scan_through_random_transitions():
    rng = random.Random(7)
    store = MemoryStore()
    tasks = [task(n, run_at=NOW + rng.randrange(20), priority=rng.randrange(3)) for n in range(60)]
    await create(store, tasks)
    ids = [t.id for t in tasks]
    for step in range(300):
        now = NOW + step / 10
        await _random_step(store, rng, ids, now)
        records = records_after(await store.get(ids))
        limit = rng.randrange(1, 6)
        kind = rng.randrange(3)
        got: list[Task] | list[TaskRecord]
        if kind == 0:
            expected = _expected_due(records, now, limit)
            got = await store.take_due(now=now, limit=limit, ready_until=now + rng.randrange(1, 9))
        elif kind == 1:
            expected = _expected_expired(records, State.RUNNING, now, limit)
            got = await store.recover(now=now, limit=limit, default_max_attempts=2)
        else:
            expected = _expected_expired(records, State.READY, now, limit)
            got = await store.redispatch(
                now=now, limit=limit, ready_until=now + rng.randrange(1, 9)
            )
        assert [item.id for item in got] == expected, f"step {step}, kind {kind}"
        counted = Counter((r.subject, r.state) for r in records_after(await store.get(ids)))
        assert await store.counts() == dict(counted)
