"""The Coordinator conformance suite: every guarantee of ``atp.core.ports.Coordinator``.

Subclass it under a ``Test`` name and provide a ``coordinator`` fixture::

    class TestMyCoordinator(CoordinatorConformance):
        @pytest.fixture
        async def coordinator(self, clock):
            coordinator = MyCoordinator(url, clock=clock)
            yield coordinator
            await coordinator.close()

Each test uses lease names from ``unique()``, so a shared server needs no cleaning.

Time: leases expire in the coordinator's time. With the default ``ManualClock`` the
suite advances it and never waits. A coordinator whose server keeps its own time (a
Redis key's TTL, an etcd lease) overrides ``clock`` to return a ``SystemClock``: the
expiry tests then really wait about 1.5 x ``expiry_ttl`` (raise it for a server with a
minimum TTL: etcd needs 2 s), ``expires_at`` is compared with ``time_tolerance``, and a
test whose wait would exceed ``max_real_wait`` is skipped.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from atp.core.ports import Clock, Coordinator, Lease
from atp.sdk.conformance._support import PortSuite, is_manual, missing_fixture, pass_time, unique

__all__ = ["CoordinatorConformance"]

TTL = 30.0


class CoordinatorConformance(PortSuite):
    """Checks a Coordinator against the contract in ``atp.core.ports``."""

    expiry_ttl: ClassVar[float] = 1.0
    """Seconds of the leases the expiry tests let run out."""
    time_tolerance: ClassVar[float] = 0.5
    """How far ``expires_at`` may stray from ``now + ttl`` with a real clock."""

    @pytest.fixture
    def coordinator(self, clock: Clock) -> Coordinator:
        """Override: a Coordinator built with ``clock``."""
        missing_fixture(self, "coordinator")

    @pytest.fixture
    def name(self) -> str:
        """A lease name no other test uses."""
        return unique("lease")

    async def test_implements_the_protocol(self, coordinator: Coordinator) -> None:
        assert isinstance(coordinator, Coordinator)

    async def test_acquire_takes_a_free_lease(
        self, coordinator: Coordinator, clock: Clock, name: str
    ) -> None:
        before = clock.now()
        lease = await coordinator.acquire(name, "a", TTL)
        assert lease is not None
        assert (lease.name, lease.owner, type(lease.token)) == (name, "a", int)
        self.assert_expires(lease, before, clock.now(), TTL)
        assert same_holder(await coordinator.holder(name), lease)

    async def test_acquire_is_refused_while_another_owner_holds(
        self, coordinator: Coordinator, name: str
    ) -> None:
        held = await coordinator.acquire(name, "a", TTL)
        assert await coordinator.acquire(name, "b", TTL) is None
        assert same_holder(await coordinator.holder(name), held)

    async def test_reacquire_by_the_holder_keeps_the_token_and_extends(
        self, coordinator: Coordinator, clock: Clock, name: str
    ) -> None:
        first = await coordinator.acquire(name, "a", TTL)
        await pass_time(clock, 1.0 if is_manual(clock) else 0.1)
        again = await coordinator.acquire(name, "a", TTL)
        assert first is not None
        assert again is not None
        assert (again.owner, again.token) == ("a", first.token)
        assert again.expires_at > first.expires_at

    async def test_renew_extends_the_lease_and_keeps_the_token(
        self, coordinator: Coordinator, clock: Clock, name: str
    ) -> None:
        lease = await coordinator.acquire(name, "a", TTL)
        assert lease is not None
        await pass_time(clock, 1.0 if is_manual(clock) else 0.1)
        before = clock.now()
        renewed = await coordinator.renew(lease, 2 * TTL)
        assert renewed is not None
        assert (renewed.name, renewed.owner, renewed.token) == (name, "a", lease.token)
        self.assert_expires(renewed, before, clock.now(), 2 * TTL)
        assert same_holder(await coordinator.holder(name), renewed)

    async def test_renew_after_a_takeover_returns_none(
        self, coordinator: Coordinator, clock: Clock, name: str
    ) -> None:
        lost = await coordinator.acquire(name, "a", self.expiry_ttl)
        assert lost is not None
        await self.let_expire(clock)
        taker = await coordinator.acquire(name, "b", TTL)
        assert await coordinator.renew(lost, TTL) is None
        assert same_holder(await coordinator.holder(name), taker)

    async def test_renew_after_release_returns_none(
        self, coordinator: Coordinator, name: str
    ) -> None:
        lease = await coordinator.acquire(name, "a", TTL)
        assert lease is not None
        await coordinator.release(lease)
        assert await coordinator.renew(lease, TTL) is None
        assert await coordinator.holder(name) is None

    async def test_release_frees_the_lease_for_a_larger_token(
        self, coordinator: Coordinator, name: str
    ) -> None:
        first = await coordinator.acquire(name, "a", TTL)
        assert first is not None
        await coordinator.release(first)
        assert await coordinator.holder(name) is None
        second = await coordinator.acquire(name, "b", TTL)
        assert second is not None
        assert second.token > first.token

    async def test_release_of_a_lease_no_longer_ours_changes_nothing(
        self, coordinator: Coordinator, clock: Clock, name: str
    ) -> None:
        stale = await coordinator.acquire(name, "a", self.expiry_ttl)
        assert stale is not None
        await self.let_expire(clock)
        current = await coordinator.acquire(name, "b", TTL)
        await coordinator.release(stale)
        assert same_holder(await coordinator.holder(name), current)
        assert current is not None
        await coordinator.release(Lease(name, "c", current.token, current.expires_at))
        assert same_holder(await coordinator.holder(name), current)

    async def test_expired_lease_is_taken_over_with_a_larger_token(
        self, coordinator: Coordinator, clock: Clock, name: str
    ) -> None:
        first = await coordinator.acquire(name, "a", self.expiry_ttl)
        assert first is not None
        await self.let_expire(clock)
        assert await coordinator.holder(name) is None
        second = await coordinator.acquire(name, "b", TTL)
        assert second is not None
        assert second.token > first.token

    async def test_holder_of_an_unknown_name_is_none(
        self, coordinator: Coordinator, name: str
    ) -> None:
        assert await coordinator.holder(name) is None

    async def test_names_are_independent(self, coordinator: Coordinator, name: str) -> None:
        other = unique("lease")
        mine = await coordinator.acquire(name, "a", TTL)
        theirs = await coordinator.acquire(other, "b", TTL)
        assert mine is not None
        assert theirs is not None
        await coordinator.release(mine)
        assert await coordinator.holder(name) is None
        assert same_holder(await coordinator.holder(other), theirs)

    async def test_tokens_strictly_increase_over_holder_changes(
        self, coordinator: Coordinator, name: str
    ) -> None:
        tokens = []
        for owner in ("a", "b", "a", "c", "b", "a"):
            lease = await coordinator.acquire(name, owner, TTL)
            assert lease is not None, f"{owner} could not take the released lease"
            tokens.append(lease.token)
            await coordinator.release(lease)
        assert tokens == sorted(set(tokens)), f"tokens did not strictly increase: {tokens}"

    async def let_expire(self, clock: Clock) -> None:
        """Wait until a lease taken with ``expiry_ttl`` has surely expired."""
        slack = 0.0 if is_manual(clock) else max(0.5 * self.expiry_ttl, 0.25)
        await pass_time(clock, self.real_wait(clock, self.expiry_ttl + slack, "lease expiry"))

    def assert_expires(self, lease: Lease, before: float, after: float, ttl: float) -> None:
        tolerance = 1e-6 if before == after else self.time_tolerance
        low, high = before + ttl - tolerance, after + ttl + tolerance
        assert low <= lease.expires_at <= high, (
            f"expires_at {lease.expires_at} is not now + ttl ({before + ttl}..{after + ttl})"
        )


def same_holder(found: Lease | None, expected: Lease | None) -> bool:
    """Tell whether two leases name the same tenure: name, owner and token."""
    if found is None or expected is None:
        return found is expected
    return (found.name, found.owner, found.token) == (expected.name, expected.owner, expected.token)
