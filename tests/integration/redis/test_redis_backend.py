"""The Redis plugin beyond the port contracts: idempotency under concurrent producers,
the scripts' failure answers, stream trimming, URLs, and working without redis-py."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from atp.core.clock import ManualClock, SystemClock
from atp.core.codec import encode_task
from atp.core.errors import ConfigError, FencedOut, InvalidInput
from atp.core.model import State
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Fence
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis._records import pack_task
from atp.plugins.redis.keys import StoreKeys, TransportKeys
from atp.plugins.redis.store import RedisStore
from atp.plugins.redis.transport import RedisTransport
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration


async def test_fifty_concurrent_producers_with_one_key_create_one_task(url: str) -> None:
    settings = Settings(store=url, transport=url)
    platforms = [Platform.build(settings) for _ in range(50)]
    key = unique("order")
    try:
        published = await asyncio.gather(
            *(
                TaskService(p).publish(
                    [PublishRequest("orders.close", {"order": 42}, idempotency_key=key)]
                )
                for p in platforms
            )
        )
        ids = {result.id for [result] in published}
        assert len(ids) == 1
        assert sum(result.created for [result] in published) == 1
        counts = await platforms[0].store.counts()
        assert sum(counts.values()) == 1
    finally:
        for platform in platforms:
            await platform.close()


async def test_a_fenced_out_write_raises_and_changes_nothing(url: str) -> None:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock())
    now = 1_750_000_000.0
    try:
        service_task = await _scheduled(store, now)
        await store.take_due(now=now - 10, limit=10, ready_until=now + 30, fence=Fence("s", 7))
        with pytest.raises(FencedOut, match="older than 7"):
            await store.take_due(now=now, limit=10, ready_until=now + 30, fence=Fence("s", 6))
        [record] = await store.get([service_task])
        assert record is not None
        assert record.state is State.SCHEDULED
    finally:
        await store.close()


async def test_scripts_are_loaded_again_after_the_server_forgot_them(url: str) -> None:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock())
    client = aioredis.Redis.from_url(url.split("?")[0])
    try:
        await _scheduled(store, 1_750_000_000.0)
        await client.script_flush()
        assert sum((await store.counts()).values()) == 1
        await _scheduled(store, 1_750_000_000.0)
        assert sum((await store.counts()).values()) == 2
    finally:
        await store.close()
        await client.aclose()


async def test_acked_entries_are_trimmed_and_pending_ones_kept(url: str, prefix: str) -> None:
    transport = make_plugin_manager().make_transport(url, Settings(), SystemClock())
    assert isinstance(transport, RedisTransport)
    client = aioredis.Redis.from_url(url.split("?")[0])
    subject = f"{unique('trim')}.x"
    stream = TransportKeys(prefix).stream(subject)
    try:
        consumer = await transport.consume(subject, "g")
        await transport.publish([await _task(subject, n) for n in range(6)])
        got = await consumer.fetch(6, 2.0)
        assert len(got) == 6
        await consumer.ack(got[:4])
        remaining = [entry for entry, _ in await client.xrange(stream)]
        assert len(remaining) == 2, "acked entries stay, or pending ones were trimmed"
        assert {e.decode() for e in remaining} == {d.token.split(" ")[1] for d in got[4:]}
        await consumer.ack(got[4:])
        await consumer.close()
    finally:
        await transport.close()
        await client.aclose()


async def test_a_consumer_joins_again_when_the_server_lost_its_group(url: str, prefix: str) -> None:
    transport = make_plugin_manager().make_transport(url, Settings(), SystemClock())
    client = aioredis.Redis.from_url(url.split("?")[0])
    subject = f"{unique('lost')}.x"
    try:
        consumer = await transport.consume(f"{subject.split('.')[0]}.>", "g")
        await transport.publish([await _task(subject, 1)])
        assert len(await consumer.fetch(1, 2.0)) == 1
        await client.delete(TransportKeys(prefix).stream(subject))  # as a restart without AOF
        assert await consumer.fetch(1, 0.2) == []
        second = await _task(subject, 2)
        await transport.publish([second])
        got = []
        for _ in range(20):
            got += await consumer.fetch(1, 0.5)
            if got:
                break
        assert [d.task_id for d in got] == [second.id]
        await consumer.ack(got)
    finally:
        await transport.close()
        await client.aclose()


async def test_an_entry_written_before_ids_is_delivered_by_its_envelope_id(
    url: str, prefix: str
) -> None:
    transport = make_plugin_manager().make_transport(url, Settings(), SystemClock())
    client = aioredis.Redis.from_url(url.split("?")[0])
    subject = f"{unique('old')}.x"
    try:
        consumer = await transport.consume(subject, "g")
        task = await _task(subject, 1)
        await client.xadd(TransportKeys(prefix).stream(subject), {"t": encode_task(task)})
        got = await consumer.fetch(5, 2.0)
        assert [(d.task_id, d.subject) for d in got] == [(task.id, subject)]
        await consumer.ack(got)
    finally:
        await transport.close()
        await client.aclose()


async def test_an_expired_delivery_behind_many_live_ones_is_taken_over(url: str) -> None:
    settings = Settings(lease=1.0, heartbeat=0.25)
    transport = make_plugin_manager().make_transport(url, settings, SystemClock())
    subject = f"{unique('deep')}.x"
    try:
        holder = await transport.consume(subject, "g")
        rival = await transport.consume(subject, "g")
        await transport.publish([await _task(subject, n) for n in range(60)])
        held = await holder.fetch(60, 2.0)
        assert len(held) == 60
        live, abandoned = held[:-1], held[-1]
        for _ in range(6):  # keep all but the last alive past its lease
            await asyncio.sleep(0.25)
            await holder.keep_alive(live)
        got = await rival.fetch(1, 2.0)
        assert [(d.task_id, d.deliveries) for d in got] == [(abandoned.task_id, 2)]
        await rival.ack(got)
        await holder.ack(live)
    finally:
        await transport.close()


async def test_terminated_messages_keep_a_copy_with_the_reason(url: str, prefix: str) -> None:
    transport = make_plugin_manager().make_transport(url, Settings(), SystemClock())
    client = aioredis.Redis.from_url(url.split("?")[0])
    subject = f"{unique('dead')}.x"
    try:
        consumer = await transport.consume(subject, "g")
        task = await _task(subject, 1)
        await transport.publish([task])
        await consumer.terminate(await consumer.fetch(1, 2.0), "poison")
        [(_, fields)] = await client.xrange(TransportKeys(prefix).dead(subject))
        assert (fields[b"reason"], fields[b"group"]) == (b"poison", b"atp:g")
        assert fields[b"i"] == task.id.encode()
    finally:
        await transport.close()
        await client.aclose()


async def test_create_retried_after_a_lost_reply_reports_its_tasks_created(
    url: str, prefix: str
) -> None:
    keys = StoreKeys(prefix)
    client = aioredis.Redis.from_url(url.split("?")[0])
    task = await _task(f"{unique('retry')}.x", 1)
    call_keys = [*keys.indexes(), keys.task(task.id), keys.task(task.id)]
    args = ["1750000000.0", "60.0", "", 60_000, "nonce-1", pack_task(task), pack_task(task)]
    try:
        first = await Scripts.run(client, "create", call_keys, args)
        again = await Scripts.run(client, "create", call_keys, args)
        other = await Scripts.run(client, "create", call_keys, [*args[:4], "nonce-2", *args[5:]])
    finally:
        await client.aclose()
    assert first[1::3] == [1, 0], "the same task twice in one call: the second is not created"
    assert again[1::3] == [1, 0], "a retried call reports its own task as created"
    assert other[1::3] == [0, 0], "another call finds the task existing"


def test_a_malformed_url_is_refused_clearly() -> None:
    manager = make_plugin_manager()
    with pytest.raises(InvalidInput, match="prefix"):
        manager.make_store("redis://localhost/0?prefix=bad prefix!", Settings(), SystemClock())
    with pytest.raises(InvalidInput, match="port"):
        manager.make_store("redis://localhost:notaport/0", Settings(), SystemClock())


def test_store_and_stream_keys_share_the_shard_hash_tag() -> None:
    keys, streams = StoreKeys("atp"), TransportKeys("atp")
    tags = {
        key.split("{")[1].split("}")[0]
        for key in [
            *keys.indexes(),
            keys.task("x"),
            keys.idempotency("a.b", "k"),
            keys.unscoped_idempotency("k"),
            keys.fence("f"),
            streams.stream("a.b"),
            streams.dead("a.b"),
            streams.subjects,
        ]
    }
    assert tags == {"s0"}
    assert streams.stream("orders.close") == "atp:{s0}:stream:orders.close"
    assert streams.dead("orders.close") == "atp:{s0}:dead:orders.close"
    assert streams.subjects == "atp:{s0}:subjects"
    assert keys.task("x").startswith(keys.task_prefix)


WITHOUT_REDIS = """
import sys
sys.modules["redis"] = None
from atp.core.clock import SystemClock
from atp.core.errors import ConfigError
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings
manager = make_plugin_manager()
manager.make_store("memory://", Settings(), SystemClock())
assert "redis" in manager.schemes("store")
try:
    manager.make_store("redis://localhost/0", Settings(), SystemClock())
except ConfigError as exc:
    print("refused:", exc)
"""


def test_other_backends_work_without_redis_py() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "refused: redis:// needs redis-py" in done.stdout


async def _scheduled(store: object, now: float) -> str:
    assert isinstance(store, RedisStore)
    task = await _task(f"{unique('s')}.x", 0, run_at=now - 5)
    [created] = await store.create([task], now=now - 5, idempotency_window=60)
    assert created.created
    return task.id


async def _task(subject: str, n: int, run_at: float = 1_750_000_000.0):  # type: ignore[no-untyped-def]
    from atp.core.ids import new_id
    from atp.core.model import Task

    return Task(new_id(run_at), subject, payload={"n": n}, run_at=run_at, created_at=run_at)


_ = ConfigError
