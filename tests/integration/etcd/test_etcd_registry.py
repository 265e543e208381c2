"""The etcd registry beyond the conformance suite: one etcd lease per announce, members
that move off their previous lease, and expiry decided by etcd, not by the announcer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from atp.core.clock import SkewedClock, SystemClock
from atp.plugins.etcd._cluster import Cluster, Entry
from atp.plugins.etcd._url import parse_url
from atp.plugins.etcd.coordinator import EtcdCoordinator
from atp.sdk.conformance import unique
from atp.sdk.conformance.registry import make_member

pytestmark = pytest.mark.integration


@pytest.fixture
def url(etcd_url: str) -> str:
    return f"{etcd_url}?prefix={unique('registry')}"


@pytest.fixture
async def raw(url: str) -> AsyncIterator[Cluster]:
    cluster = Cluster(parse_url(url))
    yield cluster
    await cluster.close()


@pytest.fixture
async def coordinator(url: str) -> AsyncIterator[EtcdCoordinator]:
    coordinator = EtcdCoordinator(parse_url(url), SystemClock())
    yield coordinator
    await coordinator.close()


async def entry_of(raw: Cluster, coordinator: EtcdCoordinator, name: str) -> Entry:
    found = await raw.get(f"{coordinator.target.prefix}/members/{name}".encode())
    assert found is not None
    return found


async def test_one_announce_puts_its_members_on_one_lease(coordinator, raw):
    members = [make_member(name, "worker", time.time()) for name in ("a", "b")]
    await coordinator.announce(members, ttl=5)
    first, second = await entry_of(raw, coordinator, "a"), await entry_of(raw, coordinator, "b")
    assert first.lease == second.lease != 0
    assert 4 <= await raw.time_to_live(first.lease) <= 5


async def test_a_heartbeat_keeps_its_lease_alive_and_a_new_batch_gets_its_own(coordinator, raw):
    member = make_member("a", "worker", time.time())
    await coordinator.announce([member], ttl=5)
    first = (await entry_of(raw, coordinator, "a")).lease
    await coordinator.announce([member], ttl=5)
    assert (await entry_of(raw, coordinator, "a")).lease == first
    await coordinator.announce([member, make_member("b", "worker", time.time())], ttl=5)
    assert (await entry_of(raw, coordinator, "a")).lease != first
    await raw.revoke(first)
    assert [m.name for m in await coordinator.members()] == ["a", "b"]


async def test_a_heartbeat_whose_lease_is_gone_takes_a_new_one(coordinator, raw):
    member = make_member("a", "worker", time.time())
    await coordinator.announce([member], ttl=5)
    first = (await entry_of(raw, coordinator, "a")).lease
    await raw.revoke(first)
    assert await coordinator.members() == []
    await coordinator.announce([member], ttl=5)
    assert (await entry_of(raw, coordinator, "a")).lease not in (0, first)
    assert [m.name for m in await coordinator.members()] == ["a"]


async def test_a_member_announced_again_leaves_its_previous_lease(coordinator, raw):
    await coordinator.announce([make_member("a", "worker", time.time())], ttl=5)
    old = (await entry_of(raw, coordinator, "a")).lease
    await coordinator.announce([make_member("a", "worker", time.time(), running=5)], ttl=30)
    await raw.revoke(old)  # the old lease ending takes nothing with it
    [found] = await coordinator.members()
    assert found.running == 5
    assert 29 <= await raw.time_to_live((await entry_of(raw, coordinator, "a")).lease) <= 30


async def test_a_revoked_lease_removes_its_members_whatever_the_announcer_clock(url, raw):
    ahead = EtcdCoordinator(parse_url(url), SkewedClock(SystemClock(), 3600.0))
    try:
        await ahead.announce([make_member("a", "worker", time.time())], ttl=30)
        [found] = await ahead.members()
        assert found.expires_at > time.time() + 3600, "expires_at is the announcer's estimate"
        await raw.revoke((await entry_of(raw, ahead, "a")).lease)
        assert await ahead.members() == [], "presence is etcd's"
    finally:
        await ahead.close()


async def test_withdraw_of_more_than_one_transaction_of_names(coordinator):
    names = [f"w{i:03d}" for i in range(300)]
    await coordinator.announce([make_member(n, "worker", time.time()) for n in names], ttl=30)
    assert len(await coordinator.members()) == 300
    await coordinator.withdraw([*names[:290], "unknown"])
    assert [m.name for m in await coordinator.members()] == names[290:]
