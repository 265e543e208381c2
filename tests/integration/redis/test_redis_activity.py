"""The Redis store's activity buckets (``Activity``) beyond the conformance suite: the
fused finish + ack and the quarantine count too, a bucket's key lives in the shard's
hash tag and expires, and ``activity_trim.lua`` forgets the oldest buckets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from atp.core.clock import SystemClock
from atp.core.ids import new_id
from atp.core.model import State, Task
from atp.core.plugins import make_plugin_manager
from atp.core.ports import (
    ACTIVITY_BUCKET,
    ACTIVITY_KEPT,
    ActivityCount,
    ClaimingConsumer,
    Outcome,
)
from atp.core.settings import Settings
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis._quarantine import quarantine
from atp.plugins.redis.keys import StoreKeys
from atp.plugins.redis.store import RedisStore
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration

START = 1_800_000_000.0  # a whole minute
TTL = ACTIVITY_KEPT + 2 * ACTIVITY_BUCKET


@pytest.fixture
async def store(url: str) -> AsyncIterator[RedisStore]:
    store = make_plugin_manager().make_store(url, Settings(), SystemClock())
    assert isinstance(store, RedisStore)
    yield store
    await store.close()


@pytest.fixture
async def client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url.split("?")[0])
    yield client
    await client.aclose()


def make_task(subject: str, now: float) -> Task:
    return Task(new_id(now), subject, run_at=now, created_at=now)


async def ready(store: RedisStore, subject: str, now: float) -> Task:
    task = make_task(subject, now)
    await store.create([task], now=now, idempotency_window=60, ready_until=now + 30)
    return task


async def dead_at(store: RedisStore, subject: str, at: float) -> None:
    task = await ready(store, subject, at)
    await store.claim([task.id], owner="w", now=at, lease_until=at + 30)
    assert await store.finish([Outcome(task.id, "w", State.DEAD, at=at)]) == [True]


async def test_the_fused_finish_and_ack_counts_each_ending(url: str) -> None:
    settings, clock = Settings(lease=1.0, heartbeat=0.25), SystemClock()
    manager = make_plugin_manager()
    store = manager.make_store(url, settings, clock)
    transport = manager.make_transport(url, settings, clock)
    assert isinstance(store, RedisStore)
    assert store.fuse(transport)
    subject, now = f"{unique('f')}.x", time.time()
    tasks = [make_task(subject, now) for _ in range(3)]
    await store.create_and_publish(tasks, now=now, idempotency_window=60, ready_until=now + 60)
    consumer = await transport.consume(subject, "g")
    try:
        assert isinstance(consumer, ClaimingConsumer)
        got = await consumer.fetch_claimed(10, 2.0, owner="w", lease=30)
        assert len(got) == 3
        at = START + 5
        states = (State.SUCCEEDED, State.SCHEDULED, State.DEAD)
        outcomes = [
            Outcome(d.task_id, "w", s, at=at) for (d, _), s in zip(got, states, strict=True)
        ]
        assert await consumer.finish_and_ack(outcomes, [d for d, _ in got]) == [True] * 3
        found = await store.activity(since=START)
        assert sorted(found, key=lambda c: c.state) == sorted(
            (ActivityCount(START, subject, state, 1) for state in states), key=lambda c: c.state
        )
    finally:
        await consumer.close()
        await transport.close()
        await store.close()


async def test_a_quarantined_task_counts_as_dead(store: RedisStore, prefix: str) -> None:
    subject = f"{unique('q')}.x"
    task = await ready(store, subject, START)
    await quarantine(store._link, StoreKeys(prefix), {task.id: "undecodable"}, START + 61)
    found = await store.activity(since=0.0)
    assert found == [ActivityCount(START + ACTIVITY_BUCKET, subject, State.DEAD, 1)]


async def test_a_bucket_lives_in_the_shard_and_expires_from_its_first_write(
    store: RedisStore, client: aioredis.Redis, prefix: str
) -> None:
    keys, subject = StoreKeys(prefix), f"{unique('t')}.x"
    await dead_at(store, subject, START)
    key = keys.activity_bucket(f"{START:.0f}")
    assert key.startswith(f"{prefix}:{{s0}}:activity:")
    first = await client.ttl(key)
    assert TTL - 5 <= first <= TTL
    await client.expire(key, 100)
    await dead_at(store, subject, START + 1)
    assert 0 < await client.ttl(key) <= 100, "a later write does not extend the expiry"
    assert await client.hgetall(key) == {f"{subject} DEAD".encode(): b"2"}
    assert await client.zrange(keys.activity, 0, -1, withscores=True) == [
        (f"{START:.0f}".encode(), START)
    ]


async def test_a_bucket_whose_key_expired_is_left_out(
    store: RedisStore, client: aioredis.Redis, prefix: str
) -> None:
    subject = f"{unique('t')}.x"
    for at in (START, START + ACTIVITY_BUCKET):
        await dead_at(store, subject, at)
    await client.delete(StoreKeys(prefix).activity_bucket(f"{START:.0f}"))
    found = await store.activity(since=0.0)
    assert found == [ActivityCount(START + ACTIVITY_BUCKET, subject, State.DEAD, 1)]


async def test_activity_trim_forgets_the_oldest_buckets_up_to_its_limit(
    store: RedisStore, client: aioredis.Redis, prefix: str
) -> None:
    keys, subject = StoreKeys(prefix), f"{unique('t')}.x"
    starts = [START + n * ACTIVITY_BUCKET for n in range(4)]
    for at in starts:
        await dead_at(store, subject, at)
    last = f"{starts[2]:.0f}"
    assert await Scripts.run(client, "activity_trim", [keys.activity], [last, 2]) == 2
    assert await Scripts.run(client, "activity_trim", [keys.activity], [last, 2]) == 1
    assert await Scripts.run(client, "activity_trim", [keys.activity], [last, 2]) == 0
    members = await client.zrange(keys.activity, 0, -1)
    assert members == [f"{starts[3]:.0f}".encode()]
    for at in starts[:3]:
        assert not await client.exists(keys.activity_bucket(f"{at:.0f}"))
    assert [c.at for c in await store.activity(since=0.0)] == [starts[3]]
