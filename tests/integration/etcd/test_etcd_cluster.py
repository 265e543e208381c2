"""A three-member etcd cluster: losing a member, even etcd's own leader, costs no lease."""

from __future__ import annotations

import asyncio
import time

import pytest

from atp.core.clock import SystemClock
from atp.core.errors import BackendUnavailable
from atp.core.ports import Lease
from atp.plugins.etcd._url import parse_url
from atp.plugins.etcd.coordinator import EtcdCoordinator
from tests.services import EtcdCluster

pytestmark = pytest.mark.integration

TTL = 4.0


async def renew_through_failover(coordinator: EtcdCoordinator, lease: Lease) -> Lease:
    """Renew until one renewal answers; the cluster may be electing a leader meanwhile."""
    deadline = time.monotonic() + 3 * TTL
    while True:
        try:
            renewed = await coordinator.renew(lease, TTL)
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        assert renewed is not None, "the lease was lost while a member was down"
        return renewed


async def test_the_holder_keeps_its_token_when_its_member_and_the_raft_leader_stop(
    etcd_cluster: EtcdCluster,
) -> None:
    first = etcd_cluster.leader()
    others = [i for i in range(3) if i != first]
    holder = EtcdCoordinator(parse_url(etcd_cluster.url_of(first, *others)), SystemClock())
    observer = EtcdCoordinator(parse_url(etcd_cluster.url_of(*others)), SystemClock())
    try:
        lease = await holder.acquire("scheduler", "a", TTL)
        assert lease is not None
        await asyncio.to_thread(etcd_cluster.members[first].stop)

        renewed = await renew_through_failover(holder, lease)
        assert renewed.token == lease.token
        assert etcd_cluster.leader() in others
        found = await observer.holder("scheduler")
        assert found is not None
        assert (found.owner, found.token) == ("a", lease.token)
        assert await observer.acquire("scheduler", "b", TTL) is None

        await holder.release(renewed)
        taken = await observer.acquire("scheduler", "b", TTL)
        assert taken is not None
        assert taken.token > lease.token
    finally:
        await holder.close()
        await observer.close()


async def test_a_stopped_member_that_returns_serves_again(etcd_cluster: EtcdCluster) -> None:
    coordinator = EtcdCoordinator(parse_url(etcd_cluster.url_of(0, 1)), SystemClock())
    try:
        first = await coordinator.acquire("lock", "a", TTL)
        assert first is not None
        await asyncio.to_thread(etcd_cluster.members[0].stop)
        await asyncio.to_thread(etcd_cluster.members[1].stop)
        with pytest.raises(BackendUnavailable, match="no etcd member"):
            await coordinator.holder("lock")
        await asyncio.to_thread(etcd_cluster.members[0].start)
        await asyncio.to_thread(etcd_cluster.members[1].start)
        renewed = await renew_through_failover(coordinator, first)
        assert renewed.token == first.token
    finally:
        await coordinator.close()
