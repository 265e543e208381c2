"""The etcd Limiter on a real etcd: the conformance suite (on the caller's clock), and how
it keeps buckets there (a lease per idle time, a lease that ended early)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from atp.core.clock import ManualClock
from atp.core.plugins import PluginManager
from atp.core.ports import Limiter
from atp.core.settings import Settings
from atp.plugins.etcd._cluster import Cluster
from atp.plugins.etcd._url import parse_url
from atp.plugins.etcd.limiter import EtcdLimiter
from atp.sdk.conformance import unique
from tests.limiter_support import UrlLimiterConformance, make_limiter

pytestmark = pytest.mark.integration


@pytest.fixture
def url(etcd_url: str) -> str:
    return f"{etcd_url}?prefix={unique('limits')}"


class TestEtcdLimiter(UrlLimiterConformance):
    async def test_the_plugin_serves_the_etcd_limiter(self, limiter: Limiter) -> None:
        assert isinstance(limiter, EtcdLimiter)


@pytest.fixture
async def raw(url: str) -> AsyncIterator[Cluster]:
    cluster = Cluster(parse_url(url))
    yield cluster
    await cluster.close()


@pytest.fixture
async def limiter(
    plugin_manager: PluginManager, settings: Settings, url: str
) -> AsyncIterator[Limiter]:
    limiter = make_limiter(plugin_manager, url, settings, ManualClock())
    yield limiter
    await limiter.close()


async def test_a_bucket_lives_on_a_lease_longer_than_it_takes_to_fill(
    limiter: Limiter, raw: Cluster, url: str
) -> None:
    key = unique("bucket")
    assert await limiter.acquire(key, rate=1.0, burst=5, cost=3) == 0.0
    entry = await raw.get(f"{parse_url(url).prefix}/limits/{key}".encode())
    assert entry is not None
    tokens, _ = entry.value.split()
    assert float(tokens) == 2.0
    # Full again in 3 s: a lease of 2 x (3 + 1) s, reused while 4 s of it are left.
    assert 7 <= await raw.time_to_live(entry.lease) <= 8


async def test_a_lease_that_ended_early_is_replaced(
    limiter: Limiter, raw: Cluster, url: str
) -> None:
    key = unique("bucket")
    name = f"{parse_url(url).prefix}/limits/{key}".encode()
    assert await limiter.acquire(key, rate=0.01, burst=2) == 0.0
    entry = await raw.get(name)
    assert entry is not None
    await raw.revoke(entry.lease)  # the bucket goes with it, as after an etcd restore
    assert await raw.get(name) is None
    assert await limiter.acquire(key, rate=0.01, burst=2) == 0.0
    again = await raw.get(name)
    assert again is not None
    assert again.lease != entry.lease
    assert await raw.time_to_live(again.lease) > 0
