"""What is specific to the in-process coordinator: its clock, its token counter, its plugin."""

from __future__ import annotations

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import InvalidInput
from atp.core.settings import Settings
from atp.plugins.memory import MemoryCoordinator


@pytest.fixture
def coordinator(clock: ManualClock) -> MemoryCoordinator:
    return MemoryCoordinator(clock)


async def test_leases_run_out_on_the_injected_clock(coordinator, clock):
    lease = await coordinator.acquire("leader", "a", ttl=10)
    assert lease.expires_at == clock.now() + 10
    await clock.advance(9.9)
    assert await coordinator.holder("leader") == lease
    assert await coordinator.acquire("leader", "b", ttl=10) is None
    await clock.advance(0.1)
    assert await coordinator.holder("leader") is None
    assert await coordinator.renew(lease, ttl=10) is None


async def test_the_token_counts_changes_of_holder_across_release_and_expiry(coordinator, clock):
    a1 = await coordinator.acquire("leader", "a", ttl=10)
    await coordinator.release(a1)
    a2 = await coordinator.acquire("leader", "a", ttl=10)
    await clock.advance(10)
    b = await coordinator.acquire("leader", "b", ttl=10)
    other = await coordinator.acquire("other", "b", ttl=10)
    assert [a1.token, a2.token, b.token, other.token] == [1, 2, 3, 1]


async def test_the_holder_keeps_its_token_when_it_renews_or_comes_back(coordinator, clock):
    first = await coordinator.acquire("leader", "a", ttl=10)
    renewed = await coordinator.renew(first, ttl=20)
    assert (renewed.token, renewed.expires_at) == (first.token, clock.now() + 20)
    await clock.advance(25)  # expired, but nobody else took it meanwhile
    back = await coordinator.acquire("leader", "a", ttl=10)
    assert back.token == first.token


async def test_a_stale_lease_can_neither_renew_nor_release(coordinator, clock):
    old = await coordinator.acquire("leader", "a", ttl=10)
    await clock.advance(10)
    new = await coordinator.acquire("leader", "b", ttl=10)
    await coordinator.release(old)
    assert await coordinator.renew(old, ttl=10) is None
    assert await coordinator.holder("leader") == new


async def test_bad_arguments_are_refused(coordinator):
    with pytest.raises(InvalidInput):
        await coordinator.acquire("leader", "a", ttl=0)
    with pytest.raises(InvalidInput):
        await coordinator.acquire("", "a", ttl=1)


async def test_the_plugin_builds_a_new_coordinator_per_url(plugin_manager, clock):
    first = plugin_manager.make_coordinator("memory://", Settings(), clock)
    second = plugin_manager.make_coordinator("memory://", Settings(), clock)
    assert isinstance(first, MemoryCoordinator)
    assert first is not second
    await first.acquire("leader", "a", ttl=10)
    assert await second.holder("leader") is None
    assert "memory" in plugin_manager.schemes("coordinator")
