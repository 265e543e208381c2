"""The Redis Limiter: the conformance suite, and what ``limiter_acquire.lua`` keeps on the
server (the server's clock, a bucket that expires once idle)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from atp.adapters._auth import Guard, TokenBook, new_token
from atp.core.clock import SystemClock
from atp.core.errors import BackendUnavailable
from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Limiter
from atp.core.settings import Settings
from atp.plugins.redis._connection import parse_url
from atp.plugins.redis.keys import LimiterKeys
from atp.plugins.redis.limiter import RedisLimiter
from atp.sdk.conformance import unique
from tests.limiter_support import UrlLimiterConformance, make_limiter
from tests.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def limiter(
    plugin_manager: PluginManager, settings: Settings, url: str
) -> AsyncIterator[Limiter]:
    built = make_limiter(plugin_manager, url, settings, SystemClock())
    yield built
    await built.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


class TestRedisLimiter(UrlLimiterConformance):
    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()


async def server_now(raw: aioredis.Redis) -> float:
    seconds, micros = await raw.time()
    return float(seconds) + micros / 1e6


async def test_the_bucket_is_timed_by_the_server_and_expires_once_full(
    limiter: Limiter, raw: aioredis.Redis, prefix: str
) -> None:
    key = unique("bucket")
    name = LimiterKeys(prefix).bucket(key)
    # Emptied ten server seconds ago: a local clock plays no part in the refill.
    await raw.hset(name, mapping={"t": "0", "s": repr(await server_now(raw) - 10.0)})
    assert await limiter.acquire(key, rate=0.5, burst=10) == 0.0
    tokens, stamp = await raw.hmget(name, ["t", "s"])
    assert float(tokens) == pytest.approx(4.0, abs=0.05)
    assert float(stamp) == pytest.approx(await server_now(raw), abs=0.5)
    # Full again after (10 - 4) / 0.5 = 12 s, and a second to spare.
    assert await raw.pttl(name) == pytest.approx(13_000, abs=200)


async def test_a_refused_call_answers_from_the_server_and_cost_over_burst_is_inf(
    limiter: Limiter, raw: aioredis.Redis, prefix: str
) -> None:
    key = unique("bucket")
    assert await limiter.acquire(key, rate=1.0, burst=2, cost=2) == 0.0
    assert await limiter.acquire(key, rate=1.0, burst=2, cost=3) == math.inf
    wait = await limiter.acquire(key, rate=1.0, burst=2)
    assert 0.9 < wait <= 1.0
    assert 1000 < await raw.pttl(LimiterKeys(prefix).bucket(key)) <= 3000


async def test_without_redis_the_guard_refuses_the_request_fast() -> None:
    url = parse_url(f"redis://127.0.0.1:{free_port()}?socket_timeout=1")
    assert url is not None
    bearer, token = new_token("ci", ["read"])
    guard = Guard(TokenBook([token]), RedisLimiter(url), rate=1.0, burst=1)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):  # fail closed: 503, never an unlimited pass
        await guard.admit(f"Bearer {bearer}")
    assert time.monotonic() - started < 5
    await guard.close()


async def test_a_crowd_of_callers_shares_round_trips_not_the_pool(limiter: Limiter) -> None:
    # More callers at once than the pool has connections (100): they go in pipelines.
    key = unique("bucket")
    waits = await asyncio.gather(*(limiter.acquire(key, rate=0.01, burst=50) for _ in range(300)))
    assert sorted(waits)[:50] == [0.0] * 50
    assert all(wait > 0 for wait in sorted(waits)[50:])
