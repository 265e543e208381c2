"""The Registry conformance suite: every guarantee of ``atp.core.ports.Registry``.

Subclass it under a ``Test`` name and provide a ``registry`` fixture (usually the
Coordinator, which offers the registry beside its leases)::

    class TestMyRegistry(RegistryConformance):
        @pytest.fixture
        async def registry(self, clock):
            coordinator = MyCoordinator(url, clock=clock)
            yield coordinator
            await coordinator.close()

Each test announces members of its own role from ``unique()`` and reads them back by
that role, so a shared server needs no cleaning.

Time: members expire in the registry's time. With the default ``ManualClock`` the suite
advances it and never waits. A registry whose server keeps its own time (Redis's
``TIME``, an etcd lease) overrides ``clock`` to return a ``SystemClock``: the one expiry
test then really waits about ``expiry_ttl`` plus ``expiry_slack`` (etcd needs a TTL of
2 s), and ``expires_at`` is compared with ``time_tolerance``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pytest

from atp.core.errors import InvalidInput
from atp.core.ports import Clock, Member, Registry
from atp.sdk.conformance._support import PortSuite, is_manual, missing_fixture, pass_time, unique

__all__ = ["RegistryConformance", "make_member"]

TTL = 30.0


def make_member(name: str, role: str, now: float, **fields: object) -> Member:
    """A member with every field set to a value other than its default."""
    values: dict[str, object] = {
        "host": "host-ä.example",
        "pid": 4242,
        "version": "1.2.3",
        "group": "billing",
        "patterns": ("orders.*", "mail.>"),
        "concurrency": 8,
        "running": 3,
        "started_at": now - 60.5,
        "seen_at": now,
    }
    values.update(fields)
    return Member(name=name, role=role, **values)  # type: ignore[arg-type]


class RegistryConformance(PortSuite):
    """Checks a Registry against the contract in ``atp.core.ports``."""

    expiry_ttl: ClassVar[float] = 1.0
    """Seconds of the announcement the expiry test lets run out."""
    expiry_slack: ClassVar[float] = 0.6
    """Real seconds waited past ``expiry_ttl`` (a server may expire a little late)."""
    time_tolerance: ClassVar[float] = 0.5
    """How far ``expires_at`` may stray from ``now + ttl`` with a real clock."""

    @pytest.fixture
    def registry(self, clock: Clock) -> Registry:
        """Override: a Registry built with ``clock``."""
        missing_fixture(self, "registry")

    @pytest.fixture
    def role(self) -> str:
        """A role no other test uses."""
        return unique("role")

    async def test_implements_the_protocol(self, registry: Registry) -> None:
        assert isinstance(registry, Registry)

    async def test_announce_lists_the_member_with_its_expiry(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        member = make_member(unique("w"), role, clock.now())
        before = clock.now()
        await registry.announce([member], ttl=TTL)
        after = clock.now()
        [found] = await registry.members(role)
        assert _fields(found) == _fields(member)
        self.assert_expires(found, before, after, TTL)

    async def test_announce_replaces_a_member_by_name(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        name = unique("w")
        await registry.announce([make_member(name, role, clock.now(), running=1)], ttl=TTL)
        [first] = await registry.members(role)
        await pass_time(clock, 1.0 if is_manual(clock) else 0.1)
        again = make_member(name, role, clock.now(), running=7, patterns=("other",))
        await registry.announce([again], ttl=2 * TTL)
        [found] = await registry.members(role)
        assert _fields(found) == _fields(again)
        assert found.expires_at > first.expires_at

    async def test_withdraw_removes_members_and_ignores_unknown_names(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        names = [unique("w") for _ in range(3)]
        await registry.announce([make_member(n, role, clock.now()) for n in names], ttl=TTL)
        await registry.withdraw([names[0], unique("never"), names[2]])
        await registry.withdraw([])
        assert [m.name for m in await registry.members(role)] == [names[1]]
        await registry.withdraw([names[1], names[1]])
        assert await registry.members(role) == []

    async def test_role_filters_and_none_lists_every_role(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        other = unique("role")
        mine, theirs = (
            make_member(unique("w"), role, clock.now()),
            make_member(unique("w"), other, clock.now()),
        )
        await registry.announce([mine, theirs], ttl=TTL)
        assert [m.name for m in await registry.members(role)] == [mine.name]
        assert [m.name for m in await registry.members(other)] == [theirs.name]
        assert await registry.members(unique("role")) == []
        every = [m.name for m in await registry.members()]
        assert {mine.name, theirs.name} <= set(every)
        assert every == sorted(every)

    async def test_many_members_in_one_call_come_back_sorted_by_name(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        members = [make_member(f"{role}-{i:03d}", role, clock.now(), pid=i) for i in range(200)]
        await registry.announce(list(reversed(members)), ttl=TTL)
        found = await registry.members(role)
        assert [m.name for m in found] == [m.name for m in members]
        assert [m.pid for m in found] == list(range(200))

    async def test_announce_of_nothing_changes_nothing(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        await registry.announce([], ttl=TTL)
        assert await registry.members(role) == []

    async def test_a_member_that_stops_announcing_expires(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        gone, kept = unique("w"), unique("w")
        members = [make_member(gone, role, clock.now()), make_member(kept, role, clock.now())]
        await registry.announce(members, ttl=self.expiry_ttl)
        await registry.announce([members[1]], ttl=TTL)
        slack = 0.0 if is_manual(clock) else self.expiry_slack
        await pass_time(clock, self.real_wait(clock, self.expiry_ttl + slack, "member expiry"))
        assert [m.name for m in await registry.members(role)] == [kept]
        assert gone not in [m.name for m in await registry.members()]

    async def test_announcing_again_before_the_ttl_keeps_the_member(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        if not is_manual(clock):
            pytest.skip("needs a ManualClock (the expiry test covers a real one)")
        member = make_member(unique("w"), role, clock.now())
        for _ in range(3):
            await registry.announce([member], ttl=10.0)
            await pass_time(clock, 9.0)
        assert [m.name for m in await registry.members(role)] == [member.name]
        await pass_time(clock, 1.0)
        assert await registry.members(role) == []

    @pytest.mark.parametrize("ttl", [0.0, -1.0, math.nan, math.inf])
    async def test_a_bad_ttl_is_refused_and_changes_nothing(
        self, registry: Registry, clock: Clock, role: str, ttl: float
    ) -> None:
        with pytest.raises(InvalidInput):
            await registry.announce([make_member(unique("w"), role, clock.now())], ttl=ttl)
        assert await registry.members(role) == []

    @pytest.mark.parametrize("flaw", ["no name", "no role", "twice", "not json"])
    async def test_a_bad_member_refuses_the_whole_call(
        self, registry: Registry, clock: Clock, role: str, flaw: str
    ) -> None:
        good = make_member(unique("w"), role, clock.now())
        bad = {
            "no name": make_member("", role, clock.now()),
            "no role": make_member(unique("w"), "", clock.now()),
            "twice": good,
            "not json": make_member(unique("w"), role, clock.now(), seen_at=math.nan),
        }[flaw]
        with pytest.raises(InvalidInput):
            await registry.announce([good, bad], ttl=TTL)
        assert await registry.members(role) == []

    async def test_a_refused_announce_keeps_the_previous_one(
        self, registry: Registry, clock: Clock, role: str
    ) -> None:
        member = make_member(unique("w"), role, clock.now(), running=1)
        await registry.announce([member], ttl=TTL)
        with pytest.raises(InvalidInput):
            await registry.announce([make_member(member.name, role, clock.now())], ttl=0.0)
        [found] = await registry.members(role)
        assert found.running == 1

    def assert_expires(self, member: Member, before: float, after: float, ttl: float) -> None:
        tolerance = 1e-6 if before == after else self.time_tolerance
        low, high = before + ttl - tolerance, after + ttl + tolerance
        assert low <= member.expires_at <= high, (
            f"expires_at {member.expires_at} is not now + ttl ({before + ttl}..{after + ttl})"
        )


def _fields(member: Member) -> tuple[object, ...]:
    """Everything the member announced: all but ``expires_at``."""
    return (
        member.name,
        member.role,
        member.host,
        member.pid,
        member.version,
        member.group,
        member.patterns,
        member.concurrency,
        member.running,
        member.started_at,
        member.seen_at,
    )
