"""The elector says who leads: once when it becomes leader or standby, again only when the
leader changes, and a DEBUG line per standby check (memory coordinator, ManualClock)."""

import logging

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import BackendUnavailable
from atp.core.ports import Lease
from atp.core.scheduler.elector import Elector
from atp.plugins.memory.coordinator import MemoryCoordinator

LOGGER = "atp.scheduler.elector"


class Unreachable(MemoryCoordinator):
    """A coordinator that cannot be reached while ``down``."""

    down = False

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        if self.down:
            raise BackendUnavailable("coordinator down")
        return await super().acquire(name, owner, ttl)

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        if self.down:
            raise BackendUnavailable("coordinator down")
        return await super().renew(lease, ttl)


def _lines(caplog: pytest.LogCaptureFixture, owner: str) -> list[tuple[int, str]]:
    found = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    return [(level, text) for level, text in found if text.startswith(f"elector {owner}:")]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=0)


async def test_a_standby_replica_names_the_leader_once_then_checks_at_debug(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    coordinator = MemoryCoordinator(clock)
    leader = Elector(coordinator, clock, "a", ttl=9)
    standby = Elector(coordinator, clock, "b", ttl=9)
    assert await leader.step()
    assert _lines(caplog, "a") == [
        (
            logging.INFO,
            "elector a: leader: this replica leads 'scheduler' (fencing token 1), "
            "renewing every 3s",
        )
    ]
    caplog.clear()
    assert not await standby.step()
    await clock.advance(3)
    assert await leader.step()
    assert not await standby.step()
    assert standby.checked_at == 3
    said = "elector b: standby: a leads (fencing token 1), checking every 3s"
    assert _lines(caplog, "b") == [(logging.INFO, said), (logging.DEBUG, said)]
    assert _lines(caplog, "a") == []  # a renewal says nothing new


async def test_a_new_leader_is_named_again_and_the_new_leader_says_so(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    coordinator = MemoryCoordinator(clock)
    a, b, c = (Elector(coordinator, clock, name, ttl=9) for name in "abc")
    assert await a.step()
    assert not await c.step()
    await a.release()
    assert await b.step()
    assert not await c.step()
    assert not await c.step()
    assert [text for _, text in _lines(caplog, "c")] == [
        "elector c: standby: a leads (fencing token 1), checking every 3s",
        "elector c: standby: b leads (fencing token 2), checking every 3s",
    ]
    assert _lines(caplog, "b") == [
        (
            logging.INFO,
            "elector b: leader: this replica leads 'scheduler' (fencing token 2), "
            "renewing every 3s",
        )
    ]


async def test_a_leader_that_loses_its_lease_says_it_is_standby(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    coordinator = Unreachable(clock)
    elector = Elector(coordinator, clock, "a", ttl=9)
    assert await elector.step()
    coordinator.down = True
    await clock.advance(10)
    assert not await elector.step()
    assert [text for _, text in _lines(caplog, "a")][1:] == [
        "elector a: coordinator unreachable: coordinator down",
        "elector a: standby: the coordinator is unreachable, checking every 3s",
    ]
    caplog.clear()
    coordinator.down = False
    assert not await elector.step()  # the renewal of the expired lease is refused
    assert await elector.step()
    assert [text for _, text in _lines(caplog, "a")] == [
        "elector a: standby: no replica holds the lease right now, competing for it, "
        "checking every 3s",
        "elector a: leader: this replica leads 'scheduler' (fencing token 1), renewing every 3s",
    ]


async def test_a_holder_the_coordinator_cannot_name_is_another_replica(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)

    class Anonymous(MemoryCoordinator):
        async def holder(self, name: str) -> Lease | None:
            raise BackendUnavailable("holder unknown here")

    coordinator = Anonymous(clock)
    assert await Elector(coordinator, clock, "a", ttl=9).step()
    assert not await Elector(coordinator, clock, "b", ttl=9).step()
    assert _lines(caplog, "b") == [
        (logging.INFO, "elector b: standby: another replica leads, checking every 3s")
    ]


async def test_a_free_lease_is_said_to_be_free(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)

    class Refusing(MemoryCoordinator):
        async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
            return None  # lost a race for it

    assert not await Elector(Refusing(clock), clock, "a", ttl=9).step()
    assert _lines(caplog, "a") == [
        (
            logging.INFO,
            "elector a: standby: no replica holds the lease right now, competing for it, "
            "checking every 3s",
        )
    ]
