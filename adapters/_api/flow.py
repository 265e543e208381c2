"""Flow-control operations both APIs offer, checked against the caller's scopes.

Reading the limits, pauses and what waits behind them needs ``read``; setting or removing
a limit, pausing and resuming need ``admin``: each changes how every worker takes tasks.
Input is checked by ``Limit`` and ``FlowService`` before anything is written.
"""

from __future__ import annotations

from atp.adapters._auth.guard import Principal
from atp.core.flow.rules import Limit
from atp.core.flow.service import FlowService, FlowStatus
from atp.core.platform import Platform

__all__ = ["FlowOperations"]


class FlowOperations:
    """The flow-control operations on behalf of one caller at a time."""

    def __init__(self, platform: Platform) -> None:
        self.service = FlowService(platform)

    async def status(self, who: Principal) -> FlowStatus:
        who.scopes.require_read()
        return await self.service.status()

    async def set_limit(self, who: Principal, limit: Limit) -> Limit:
        who.scopes.require_admin()
        return await self.service.set_limit(limit)

    async def remove_limit(self, who: Principal, target: str, *, key: bool = False) -> None:
        who.scopes.require_admin()
        await self.service.remove_limit(target, key=key)

    async def pause(self, who: Principal, pattern: str) -> bool:
        who.scopes.require_admin()
        return await self.service.pause(pattern)

    async def resume(self, who: Principal, pattern: str) -> int:
        who.scopes.require_admin()
        return await self.service.resume(pattern)
