"""The Redis store fused with the Redis transport (``FusingStore``, ``ClaimingConsumer``):
when it fuses, create + publish, fetch + claim and finish + ack each in one script, with
the guarantees of the separate calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from atp.core.clock import SystemClock
from atp.core.errors import ConfigError
from atp.core.ids import new_id
from atp.core.model import State, Task
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.ports import ClaimingConsumer, Consumer, FusingStore, Outcome, Transport
from atp.core.settings import Settings
from atp.plugins.redis.keys import TransportKeys
from atp.plugins.redis.store import RedisStore
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration

LEASE = 1.0


@dataclass
class Fused:
    store: RedisStore
    transport: Transport
    client: aioredis.Redis
    streams: TransportKeys
    subject: str

    async def consumer(self) -> ClaimingConsumer:
        consumer = await self.transport.consume(self.subject, "g")
        assert isinstance(consumer, ClaimingConsumer)
        return consumer

    async def create(self, *tasks: Task) -> None:
        now = time.time()
        created = await self.store.create_and_publish(
            tasks, now=now, idempotency_window=60, ready_until=now + 60
        )
        assert all(c.created for c in created)

    def task(self, n: int) -> Task:
        now = time.time()
        return Task(new_id(now), self.subject, payload={"n": n}, run_at=now, created_at=now)

    async def pending(self) -> list[bytes]:
        stream = self.streams.stream(self.subject)
        held = await self.client.xpending_range(stream, "atp:g", "-", "+", 100)
        return [item["message_id"] for item in held]


@pytest.fixture
async def fused(url: str, prefix: str) -> AsyncIterator[Fused]:
    settings = Settings(lease=LEASE, heartbeat=LEASE / 4)
    manager = make_plugin_manager()
    store = manager.make_store(url, settings, SystemClock())
    transport = manager.make_transport(url, settings, SystemClock())
    assert isinstance(store, RedisStore)
    assert store.fuse(transport)
    client = aioredis.Redis.from_url(url.split("?")[0])
    yield Fused(store, transport, client, TransportKeys(prefix), f"{unique('f')}.x")
    await transport.close()
    await store.close()
    await client.aclose()


def test_fuses_only_with_a_redis_transport_on_the_same_keyspace(url: str, prefix: str) -> None:
    manager, clock = make_plugin_manager(), SystemClock()
    store = manager.make_store(url, Settings(), clock)
    assert isinstance(store, FusingStore)
    base = url.split("?")[0]
    others = [
        f"{base}?prefix={prefix}x",
        f"{base[:-1]}1?prefix={prefix}",
        "memory://",
        f"redis://127.0.0.1:1/0?prefix={prefix}",
    ]
    for other in others:
        assert not store.fuse(manager.make_transport(other, Settings(), clock)), other
    same = f"{url}&socket_timeout=2"
    assert store.fuse(manager.make_transport(same, Settings(), clock))


def test_the_platform_records_whether_it_fused(url: str) -> None:
    assert Platform.build(Settings(store=url, transport=url)).fused
    assert not Platform.build(Settings(store=url, transport="memory://")).fused


async def test_create_and_publish_needs_a_fused_transport(url: str) -> None:
    store = make_plugin_manager().make_store(url, Settings(), SystemClock())
    assert isinstance(store, RedisStore)
    with pytest.raises(ConfigError, match="fused"):
        await store.create_and_publish([], now=0.0, idempotency_window=1, ready_until=1.0)
    await store.close()


async def test_consumers_of_an_unfused_transport_are_plain(url: str) -> None:
    transport = make_plugin_manager().make_transport(url, Settings(), SystemClock())
    consumer = await transport.consume("a.>", "g")
    assert isinstance(consumer, Consumer)
    assert not isinstance(consumer, ClaimingConsumer)
    await consumer.close()
    await transport.close()


async def test_created_and_published_then_claimed_and_finished(fused: Fused) -> None:
    consumer = await fused.consumer()
    task = fused.task(1)
    await fused.create(task)
    [(delivery, claim)] = await consumer.fetch_claimed(10, 2.0, owner="w1", lease=30)
    record = claim.record
    assert claim.claimed
    assert record is not None
    assert (delivery.task_id, delivery.subject, delivery.deliveries) == (task.id, task.subject, 1)
    assert (record.task, record.state, record.lease_owner) == (
        task.replace(attempt=1),
        State.RUNNING,
        "w1",
    )
    [stored] = await fused.store.get([task.id])
    assert stored == record, "the record returned is the one stored"
    outcome = Outcome(task.id, "w1", State.SUCCEEDED, time.time(), result={"done": 1})
    assert await consumer.finish_and_ack([outcome], [delivery]) == [True]
    [finished] = await fused.store.get([task.id])
    assert finished is not None
    assert (finished.state, finished.result) == (State.SUCCEEDED, {"done": 1})
    assert await fused.pending() == []


async def test_a_duplicate_entry_is_acked_and_an_unknown_id_terminated(fused: Fused) -> None:
    consumer = await fused.consumer()
    task, ghost = fused.task(1), fused.task(2)
    await fused.create(task)
    await fused.transport.publish([task, ghost])  # a duplicate, and an id never stored
    got = await consumer.fetch_claimed(10, 2.0, owner="w1", lease=30)  # reads all three
    assert [d.task_id for d, _ in got] == [task.id]
    assert len(await fused.pending()) == 1, "only the claimed entry is held"
    dead = await fused.client.xrange(fused.streams.dead(fused.subject))
    assert [(f[b"i"].decode(), f[b"reason"]) for _, f in dead] == [
        (ghost.id, b"unknown task id: not in the task store")
    ]


async def test_an_expired_lease_is_taken_over_by_another_consumer(fused: Fused) -> None:
    first, second = await fused.consumer(), await fused.consumer()
    task = fused.task(1)
    await fused.create(task)
    [(held, _)] = await first.fetch_claimed(1, 2.0, owner="w1", lease=LEASE)
    got: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + 5 * LEASE
    while not got and time.monotonic() < deadline:
        got = await second.fetch_claimed(1, 0.5, owner="w2", lease=30)
    [(delivery, claim)] = got
    assert claim.record is not None
    assert (delivery.deliveries, claim.record.task.attempt, claim.record.lease_owner) == (
        2,
        2,
        "w2",
    )
    late = Outcome(task.id, "w1", State.SUCCEEDED, time.time())
    assert await first.finish_and_ack([late], [held]) == [False]
    assert len(await fused.pending()) == 1, "the new holder's entry is not acked"
    mine = Outcome(task.id, "w2", State.SUCCEEDED, time.time())
    assert await second.finish_and_ack([mine], [delivery]) == [True]
    assert await fused.pending() == []


async def test_finish_and_ack_acks_only_the_outcomes_applied(fused: Fused) -> None:
    consumer = await fused.consumer()
    tasks = [fused.task(n) for n in range(3)]
    await fused.create(*tasks)
    got = await consumer.fetch_claimed(3, 2.0, owner="w1", lease=30)
    assert len(got) == 3
    deliveries = [d for d, _ in got]
    owners = ["w1", "other", "w1"]
    outcomes = [
        Outcome(d.task_id, who, State.DEAD, time.time())
        for d, who in zip(deliveries, owners, strict=True)
    ]
    assert await consumer.finish_and_ack(outcomes, deliveries) == [True, False, True]
    entry = deliveries[1].token.split(" ")[1].encode()
    assert await fused.pending() == [entry]
    counts = await fused.store.counts()
    assert counts == {(fused.subject, State.DEAD): 2, (fused.subject, State.RUNNING): 1}


async def test_a_waiting_fetch_claims_what_is_published_meanwhile(fused: Fused) -> None:
    consumer = await fused.consumer()
    task = fused.task(1)

    async def later() -> None:
        await asyncio.sleep(0.2)
        await fused.create(task)

    publisher = asyncio.create_task(later())
    got = await consumer.fetch_claimed(5, 3.0, owner="w1", lease=30)
    await publisher
    assert [(d.task_id, c.claimed) for d, c in got] == [(task.id, True)]


async def test_a_fetch_returns_empty_after_its_timeout(fused: Fused) -> None:
    consumer = await fused.consumer()
    started = time.monotonic()
    assert await consumer.fetch_claimed(5, 0.3, owner="w1", lease=30) == []
    assert 0.25 <= time.monotonic() - started < 2.0
