"""The etcd coordinator beyond the conformance suite: how it uses etcd, and failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from atp.core.clock import SystemClock
from atp.core.errors import BackendUnavailable
from atp.core.ports import Lease
from atp.plugins.etcd._cluster import Cluster, Entry
from atp.plugins.etcd._url import parse_url
from atp.plugins.etcd.coordinator import EtcdCoordinator
from atp.sdk.conformance import unique
from tests.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def url(etcd_url: str) -> str:
    return f"{etcd_url}?prefix={unique('coord')}"


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
    found = await raw.get(f"{coordinator.target.prefix}/leases/{name}".encode())
    assert found is not None
    return found


def held(lease: Lease | None) -> Lease:
    assert lease is not None
    return lease


async def test_the_key_holds_the_owner_and_the_token_is_its_create_revision(coordinator, raw):
    lease = held(await coordinator.acquire("leader", "me", 5))
    entry = await entry_of(raw, coordinator, "leader")
    assert (entry.value, entry.create_revision) == (b"me", lease.token)
    assert 4 <= await raw.time_to_live(entry.lease) <= 5


async def test_a_lease_in_its_last_second_still_has_its_holder(coordinator, raw):
    lease = held(await coordinator.acquire("leader", "me", 2))
    etcd_lease = (await entry_of(raw, coordinator, "leader")).lease
    deadline = time.monotonic() + 5
    while await raw.time_to_live(etcd_lease) > 0:  # etcd says 0 for under a second left
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    found = await coordinator.holder("leader")
    assert found is not None
    assert (found.owner, found.token) == ("me", lease.token)
    assert await coordinator.acquire("leader", "you", 2) is None


async def test_renewing_with_the_same_ttl_keeps_the_etcd_lease_alive(coordinator, raw):
    lease = held(await coordinator.acquire("leader", "me", 5))
    before = await entry_of(raw, coordinator, "leader")
    renewed = held(await coordinator.renew(lease, 5))
    after = await entry_of(raw, coordinator, "leader")
    assert renewed.token == lease.token
    assert after == before  # same etcd lease, key untouched: a keep-alive only


async def test_renewing_with_another_ttl_moves_the_key_to_a_new_etcd_lease(coordinator, raw):
    lease = held(await coordinator.acquire("leader", "me", 5))
    before = await entry_of(raw, coordinator, "leader")
    renewed = held(await coordinator.renew(lease, 30))
    after = await entry_of(raw, coordinator, "leader")
    assert (renewed.token, after.create_revision) == (lease.token, lease.token)
    assert after.lease != before.lease
    assert await raw.time_to_live(after.lease) > 20
    assert await raw.time_to_live(before.lease) == -1  # the old etcd lease was revoked


async def test_another_process_of_the_owner_renews_and_releases(coordinator, url):
    lease = held(await coordinator.acquire("leader", "me", 5))
    other = EtcdCoordinator(parse_url(url), SystemClock())
    try:
        renewed = held(await other.renew(lease, 5))
        assert renewed.token == lease.token
        assert await other.renew(Lease("leader", "someone", lease.token, 0.0), 5) is None
        await other.release(Lease("leader", "me", lease.token - 1, 0.0))
        assert held(await coordinator.holder("leader")).token == lease.token
        await other.release(renewed)
        assert await coordinator.holder("leader") is None
    finally:
        await other.close()


async def test_a_lease_etcd_lost_is_not_renewed_and_is_free(coordinator, raw):
    lease = held(await coordinator.acquire("leader", "me", 30))
    await raw.revoke((await entry_of(raw, coordinator, "leader")).lease)
    assert await coordinator.renew(lease, 30) is None
    assert await coordinator.holder("leader") is None
    taken = held(await coordinator.acquire("leader", "you", 30))
    assert taken.token > lease.token


async def test_of_many_racing_for_a_free_name_exactly_one_wins(url):
    racers = [EtcdCoordinator(parse_url(url), SystemClock()) for _ in range(8)]
    try:
        won = await asyncio.gather(
            *(racer.acquire("leader", f"racer-{n}", 5) for n, racer in enumerate(racers))
        )
        winners = [lease for lease in won if lease is not None]
        assert len(winners) == 1, won
        found = held(await racers[0].holder("leader"))
        assert (found.owner, found.token) == (winners[0].owner, winners[0].token)
    finally:
        for racer in racers:
            await racer.close()


async def test_prefixes_keep_deployments_apart(coordinator, etcd_url):
    neighbour = EtcdCoordinator(parse_url(f"{etcd_url}?prefix={unique('other')}"), SystemClock())
    try:
        assert await coordinator.acquire("leader", "me", 5) is not None
        assert await neighbour.acquire("leader", "them", 5) is not None
    finally:
        await neighbour.close()


async def test_a_request_etcd_refuses_is_backend_unavailable_and_a_lost_lease_revokes(raw):
    with pytest.raises(BackendUnavailable, match=r"refused the request: .*lease not found"):
        await raw.create(b"refused-key", b"me", lease=0x7E57)
    assert await raw.get(b"refused-key") is None
    await raw.revoke(0x7E57)  # already gone: no error


async def test_no_member_listening_is_backend_unavailable_naming_each():
    ports = [free_port(), free_port()]
    url = f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    coordinator = EtcdCoordinator(parse_url(url), SystemClock())
    try:
        with pytest.raises(BackendUnavailable, match="no etcd member") as caught:
            await coordinator.acquire("leader", "me", 5)
        assert all(f"127.0.0.1:{port}" in str(caught.value) for port in ports)
    finally:
        await coordinator.close()


async def test_a_member_that_stops_answering_times_out_then_serves_again(private_server):
    server = private_server("etcd")
    coordinator = EtcdCoordinator(parse_url(f"{server.url}?timeout=0.5"), SystemClock())
    try:
        lease = held(await coordinator.acquire("leader", "me", 30))
        server.pause()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await coordinator.renew(lease, 30)
        with pytest.raises(BackendUnavailable):
            await coordinator.holder("leader")
        assert time.monotonic() - started < 5
        server.resume()
        assert held(await coordinator.renew(lease, 30)).token == lease.token
    finally:
        server.resume()
        await coordinator.close()
