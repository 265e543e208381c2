"""The fleet's reads both APIs offer: the workers with the scheduler's leader, and the
circuit breakers. Each needs scope ``read``."""

from __future__ import annotations

from atp.adapters._auth.guard import Principal
from atp.core.fleet import Fleet, FleetService
from atp.core.flow.breaker import BreakerState
from atp.core.platform import Platform

__all__ = ["FleetOperations"]


class FleetOperations:
    """The fleet's reads on behalf of one caller at a time."""

    def __init__(self, platform: Platform) -> None:
        self.service = FleetService(platform)

    async def workers(self, who: Principal) -> Fleet:
        who.scopes.require_read()
        return await self.service.workers()

    async def breakers(self, who: Principal) -> list[BreakerState]:
        who.scopes.require_read()
        return await self.service.breakers()
