"""Cron schedule operations both APIs offer, checked against the caller's scopes.

Reading (get, list) needs ``read``; every change (add, update, pause, resume, trigger,
remove) needs ``admin``: a schedule publishes on its own for as long as it exists, so
creating or firing one is an operator's act, not a producer's. Input is validated by the cron
``ScheduleService`` before anything is written: a bad expression, an unknown time zone
or a taken name raises and changes nothing.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from atp.adapters._auth.guard import Principal
from atp.core.cron.service import ScheduleService, define_schedule
from atp.core.model import JSON
from atp.core.platform import Platform
from atp.core.schedules import Schedule
from atp.core.service import Published

__all__ = ["ScheduleFields", "ScheduleOperations"]


class ScheduleFields(TypedDict):
    """A schedule's definition as both APIs take it (``define_schedule`` checks it)."""

    name: str
    expression: str
    subject: str
    payload: JSON
    tz: str
    misfire: str
    overlap: str


class ScheduleOperations:
    """The schedule operations on behalf of one caller at a time."""

    def __init__(self, platform: Platform) -> None:
        self.service = ScheduleService(platform)

    async def add(self, who: Principal, **fields: Unpack[ScheduleFields]) -> Schedule:
        """Store a new schedule (scope ``admin``); AlreadyExists for a taken name."""
        schedule = define_schedule(**fields)
        who.scopes.require_admin()
        return await self.service.add(schedule)

    async def update(self, who: Principal, **fields: Unpack[ScheduleFields]) -> Schedule:
        """Give an existing schedule a new definition (scope ``admin``), as an App's
        declaration does: it keeps its paused state and history, and its next tick is
        computed again only when the expression or time zone changed. NotFound for an
        unknown name: an edit never creates."""
        schedule = define_schedule(**fields)
        who.scopes.require_admin()
        await self.service.get(fields["name"])
        (stored,) = await self.service.declare([schedule])
        return stored

    async def get(self, who: Principal, name: str) -> Schedule:
        who.scopes.require_read()
        return await self.service.get(name)

    async def list(self, who: Principal) -> list[Schedule]:
        who.scopes.require_read()
        return await self.service.list()

    async def pause(self, who: Principal, name: str) -> Schedule:
        who.scopes.require_admin()
        return await self.service.pause(name)

    async def resume(self, who: Principal, name: str) -> Schedule:
        who.scopes.require_admin()
        return await self.service.resume(name)

    async def trigger(self, who: Principal, name: str) -> Published:
        who.scopes.require_admin()
        return await self.service.trigger(name)

    async def remove(self, who: Principal, name: str) -> None:
        who.scopes.require_admin()
        await self.service.remove(name)
