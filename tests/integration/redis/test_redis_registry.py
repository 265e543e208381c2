"""The Redis registry's scripts on a real server: expiry is the server's TIME whatever the
workers' clocks say, reading prunes both keys, and large batches fit one call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from atp.core.clock import SkewedClock, SystemClock
from atp.core.plugins import make_plugin_manager
from atp.core.registry import encode_member
from atp.core.settings import Settings
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis.coordinator import RedisCoordinator
from atp.plugins.redis.keys import RegistryKeys
from atp.sdk.conformance.registry import make_member

pytestmark = pytest.mark.integration

HOUR = 3600.0


@pytest.fixture
async def client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url.split("?")[0])
    yield client
    await client.aclose()


@pytest.fixture
def keys(prefix: str) -> RegistryKeys:
    return RegistryKeys(prefix)


def registry(url: str, offset: float = 0.0) -> RedisCoordinator:
    clock = SkewedClock(SystemClock(), offset)
    built = make_plugin_manager().make_coordinator(url, Settings(), clock)
    assert isinstance(built, RedisCoordinator)
    return built


async def test_workers_with_skewed_clocks_agree_on_the_server_time(url: str) -> None:
    ahead, behind = registry(url, HOUR), registry(url, -HOUR)
    try:
        await ahead.announce([make_member("w1", "worker", time.time() + HOUR)], ttl=30)
        [found] = await behind.members()
        assert abs(found.expires_at - (time.time() + 30)) < 1.0, "expiry is the server's"
        assert found.seen_at > time.time() + HOUR - 5, "seen_at is the worker's own"
    finally:
        await ahead.close()
        await behind.close()


async def test_announce_replaces_a_name_in_both_keys(
    client: aioredis.Redis, keys: RegistryKeys
) -> None:
    for running in (1, 2):
        body = encode_member(make_member("w1", "worker", 0.0, running=running))
        expires = await Scripts.run(client, "registry_announce", keys.both, [5000, "w1", body])
    assert await client.zcard(keys.expiry) == await client.hlen(keys.data) == 1
    assert await client.zscore(keys.expiry, "w1") == int(expires)
    assert await client.hget(keys.data, "w1") == body


async def test_reading_prunes_expired_members_from_both_keys(
    client: aioredis.Redis, keys: RegistryKeys
) -> None:
    gone = [f"w{i}" for i in range(2500)]  # more than one HDEL chunk of the prune
    await client.zadd(keys.expiry, dict.fromkeys(gone, 1000))  # expired in 1970
    await client.hset(keys.data, mapping=dict.fromkeys(gone, "{}"))
    body = encode_member(make_member("kept", "worker", 0.0))
    await Scripts.run(client, "registry_announce", keys.both, [60_000, "kept", body])
    assert await client.zcard(keys.expiry) == await client.hlen(keys.data) == 1, "announce prunes"
    await client.zadd(keys.expiry, dict.fromkeys(gone, 1000))
    await client.hset(keys.data, mapping=dict.fromkeys(gone, "{}"))
    found = await Scripts.run(client, "registry_members", keys.both, [])
    assert found[0] == body
    assert len(found) == 2
    assert await client.zcard(keys.expiry) == await client.hlen(keys.data) == 1


async def test_withdraw_counts_the_members_it_removed(
    client: aioredis.Redis, keys: RegistryKeys
) -> None:
    names = [f"w{i}" for i in range(1500)]
    args: list[object] = [60_000]
    for name in names:
        args += [name, encode_member(make_member(name, "worker", 0.0))]
    await Scripts.run(client, "registry_announce", keys.both, args)
    removed = await Scripts.run(client, "registry_withdraw", keys.both, [*names, "unknown"])
    assert removed == 1500
    assert await client.exists(keys.expiry, keys.data) == 0


async def test_a_thousand_members_in_one_announce(url: str) -> None:
    target = registry(url)
    try:
        members = [make_member(f"w{i:04d}", "worker", time.time()) for i in range(1000)]
        await target.announce(members, ttl=30)
        assert [m.name for m in await target.members("worker")] == [m.name for m in members]
    finally:
        await target.close()
