"""What runs, read by every way in: the workers listed in the coordinator's registry (ADR
0041) beside the scheduler's leader, and the circuit breakers (ADR 0040).

Reads only: a worker keeps its own entry (``atp.core.worker.presence``), a scheduler its
lease, the workers of a group their breakers.
"""

from __future__ import annotations

from dataclasses import dataclass

from atp.core.errors import ConfigError
from atp.core.flow.breaker import BreakerState
from atp.core.platform import Platform
from atp.core.ports import BreakerLedger, Lease, Member, Registry, TaskStore
from atp.core.scheduler.elector import LEADER_LEASE
from atp.core.worker.presence import ROLE

__all__ = ["Fleet", "FleetService", "breaker_ledger_of", "breakers", "fleet"]


@dataclass(frozen=True, slots=True)
class Fleet:
    """The live workers and who leads the schedulers, as the coordinator knows them."""

    workers: tuple[Member, ...]
    """Sorted by name; each gone once its TTL passed without an announcement."""
    leader: Lease | None
    """The scheduler leader's lease (owner, fencing token, expiry); None while none leads."""
    registry: bool
    """False: the coordinator keeps no registry, so ``workers`` is empty whatever runs."""


async def fleet(platform: Platform) -> Fleet:
    """The workers (role ``worker``) and the scheduler's leader, now."""
    coordinator = platform.coordinator
    leader = await coordinator.holder(LEADER_LEASE)
    if not isinstance(coordinator, Registry):
        return Fleet((), leader, registry=False)
    workers = await coordinator.members(ROLE)
    return Fleet(tuple(workers), leader, registry=True)


def breaker_ledger_of(store: TaskStore) -> BreakerLedger:
    """The store as a BreakerLedger; ConfigError naming the store if it keeps none."""
    if not isinstance(store, BreakerLedger):
        raise ConfigError.not_kept(store, "circuit breakers")
    return store


async def breakers(platform: Platform) -> list[BreakerState]:
    """Every breaker not closed, and every closed one that counted lately, by key."""
    return await breaker_ledger_of(platform.store).breakers()


class FleetService:
    """``fleet`` and ``breakers`` over one Platform, as the ways in call them."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    async def workers(self) -> Fleet:
        return await fleet(self._platform)

    async def breakers(self) -> list[BreakerState]:
        return await breakers(self._platform)
