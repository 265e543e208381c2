"""Cron schedules in the Redis store (the ScheduleStore port): a hash per schedule holding
its JSON and the fields the scripts compare, a sorted set of the active ones by next tick.

Writes are compare-and-set on the revision inside one script. The JSON is built here from
what was read, so a write that raced another fails its revision check and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atp.core.codec import dumps, loads
from atp.core.errors import InvalidInput
from atp.core.ports import Fence
from atp.core.schedules import (
    Advance,
    Schedule,
    advanced,
    name_taken,
    revision_changed,
    schedule_from_dict,
    schedule_to_dict,
    stored_copy,
)
from atp.plugins.redis._connection import Link, Scripts
from atp.plugins.redis._records import num
from atp.plugins.redis.keys import StoreKeys

__all__ = ["ScheduleMethods"]


class ScheduleMethods:
    """The ScheduleStore methods of RedisStore, on the store's shard."""

    _link: Link
    _keys: StoreKeys
    _indexes: list[str]

    async def put_schedules(self, schedules: Sequence[Schedule], *, now: float) -> list[Schedule]:
        """Create (revision 0) or replace (same revision) every schedule, or none of them."""
        if not schedules:
            return []
        names = [schedule.name for schedule in schedules]
        if len(set(names)) != len(names):
            raise InvalidInput("a schedule name appears twice in one batch")
        current = await self.get_schedules(names)
        stored = [stored_copy(s, old, now) for s, old in zip(schedules, current, strict=True)]
        args: list[Any] = []
        for schedule, new in zip(schedules, stored, strict=True):
            args += [
                schedule.name,
                schedule.revision,
                dumps(schedule_to_dict(new)),
                num(new.next_tick),
                "1" if new.paused else "0",
                new.revision,
            ]
        reply = await self._schedule_script("schedule_put", names, args)
        if reply != 0:
            _refuse(schedules[int(reply[0]) - 1], reply[1].decode())
        return stored

    async def get_schedules(self, names: Sequence[str]) -> list[Schedule | None]:
        """Return the schedule of each name, or None for an unknown name."""
        if not names:
            return []
        async with (
            self._link.guard("reading schedules"),
            self._link.client.pipeline(transaction=False) as pipe,
        ):
            for name in names:
                pipe.hget(self._keys.schedule(name), "j")
            found = await pipe.execute()
        return [None if data is None else schedule_from_dict(loads(data)) for data in found]

    async def list_schedules(self) -> list[Schedule]:
        """Return every schedule, by name."""
        async with self._link.guard("listing schedules"):
            names = await self._link.client.zrange(self._keys.index("schedule_names"), 0, -1)
        found = await self.get_schedules([name.decode() for name in names])
        return [schedule for schedule in found if schedule is not None]

    async def remove_schedules(self, names: Sequence[str]) -> list[bool]:
        """Delete schedules; per name whether it existed. Tasks already fired stay."""
        if not names:
            return []
        reply = await self._schedule_script("schedule_remove", list(names), list(names))
        return [flag == 1 for flag in reply]

    async def due_schedules(self, *, now: float, limit: int) -> list[Schedule]:
        """Active schedules with ``next_tick <= now``, earliest first, then by name."""
        if limit < 1:
            return []
        async with self._link.guard("reading due schedules"):
            names = await self._link.client.zrangebyscore(
                self._keys.index("schedules"), "-inf", num(now), start=0, num=limit
            )
        found = await self.get_schedules([name.decode() for name in names])
        return [schedule for schedule in found if schedule is not None]

    async def next_tick(self) -> float | None:
        """The earliest ``next_tick`` of the active schedules; None if there is none."""
        async with self._link.guard("reading the next tick"):
            first = await self._link.client.zrange(
                self._keys.index("schedules"), 0, 0, withscores=True
            )
        return float(first[0][1]) if first else None

    async def advance_schedules(
        self, advances: Sequence[Advance], *, now: float, fence: Fence
    ) -> list[bool]:
        """Record what the leader fired, each a compare-and-set on the revision read.
        Raises FencedOut, changing nothing, for a fence older than one seen before."""
        names = [advance.name for advance in advances]
        current = await self.get_schedules(names)
        args: list[Any] = [str(fence.token)]
        for advance, schedule in zip(advances, current, strict=True):
            json = (
                b""
                if schedule is None
                else dumps(schedule_to_dict(advanced(schedule, advance, now)))
            )
            args += [advance.name, advance.revision, json, num(advance.next_tick)]
        keys = [
            *self._indexes,
            self._keys.index("schedules"),
            self._keys.fence(fence.name),
            *map(self._keys.schedule, names),
        ]
        async with self._link.guard("advance_schedules"):
            reply = await Scripts.run(self._link, "schedule_advance", keys, args)
        return [flag == 1 for flag in reply]

    async def _schedule_script(self, script: str, names: list[str], args: list[Any]) -> Any:
        keys = [
            *self._indexes,
            self._keys.index("schedules"),
            self._keys.index("schedule_names"),
            *map(self._keys.schedule, names),
        ]
        async with self._link.guard(script):
            return await Scripts.run(self._link, script, keys, args)


def _refuse(schedule: Schedule, why: str) -> None:
    raise name_taken(schedule) if why == "exists" else revision_changed(schedule)
