"""Operator operations on cron schedules: add, declare, list, pause, resume, trigger, remove.

The SDK Client, the CLI and the REST adapter call these, so input is validated once, here,
before anything is written. A bad expression, an unknown time zone or a taken name raises
an error and changes nothing.
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Callable, Sequence

from atp.core import codec
from atp.core.cron.expression import CronExpression
from atp.core.errors import AlreadyExists, ConfigError, InvalidInput, NotFound, StateConflict
from atp.core.model import JSON
from atp.core.platform import Platform
from atp.core.ports import ScheduleStore
from atp.core.schedules import Misfire, Overlap, Schedule
from atp.core.service import Published, PublishRequest, TaskService
from atp.core.subjects import validate_subject
from atp.core.urls import mask

__all__ = ["ScheduleService", "define_schedule", "schedule_store", "tick_key"]

log = logging.getLogger("atp.cron")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
CAS_ATTEMPTS = 5
"""Read-modify-write attempts before a schedule changing under us is reported."""


def tick_key(name: str, tick: float) -> str:
    """The idempotency key of ``name``'s firing for ``tick``: one task per tick."""
    return f"cron:{name}:{round(tick * 1000)}"


def schedule_store(platform: Platform) -> ScheduleStore:
    """The platform's store as a ScheduleStore; ConfigError if it keeps no schedules."""
    store = platform.store
    if not isinstance(store, ScheduleStore):
        raise ConfigError(
            f"task store {mask(platform.settings.store)!r} does not keep cron schedules "
            "(it does not implement ScheduleStore); use one that does, such as sqlite://"
        )
    return store


def define_schedule(
    name: str,
    expression: str,
    subject: str,
    *,
    payload: JSON = None,
    tz: str = "UTC",
    misfire: Misfire | str = Misfire.ONCE,
    overlap: Overlap | str = Overlap.ALLOW,
) -> Schedule:
    """Validate a schedule's definition without storing it; InvalidInput for bad input."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(
            f"schedule name must be 1 to 128 letters, digits, '_', '.' or '-' starting "
            f"with a letter or digit, got {name!r}"
        )
    CronExpression(expression, tz)
    validate_subject(subject)
    codec.dumps(payload)  # InvalidInput if it is not JSON
    return Schedule(
        name,
        expression.strip(),
        subject,
        payload,
        tz,
        Misfire(_choice(Misfire, misfire, "misfire")),
        Overlap(_choice(Overlap, overlap, "overlap")),
    )


class ScheduleService:
    """The operations on schedules, over one Platform whose store is a ScheduleStore."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._clock = platform.clock
        self._tasks = TaskService(platform)

    @property
    def store(self) -> ScheduleStore:
        """The store; ConfigError if it keeps no schedules."""
        return schedule_store(self._platform)

    async def add(self, schedule: Schedule) -> Schedule:
        """Store a new schedule, first firing at its next tick after now.

        AlreadyExists, changing nothing, if the name is taken.
        """
        self._check(schedule)
        now = self._clock.now()
        first = CronExpression(schedule.expression, schedule.tz).next_after(now)
        new = schedule.replace(
            next_tick=first,
            paused=False,
            revision=0,
            last_tick=None,
            last_task=None,
            last_fired_at=None,
        )
        try:
            (stored,) = await self.store.put_schedules([new], now=now)
        except AlreadyExists as exc:
            raise AlreadyExists(f"a schedule named {schedule.name!r} exists already") from exc
        return stored

    async def declare(self, schedules: Sequence[Schedule]) -> list[Schedule]:
        """Create or update the schedules an App declares, in one write.

        An unchanged schedule is left alone; a changed one takes the new definition and
        keeps its paused state and history; its next tick is computed again when its
        expression or time zone changed. Schedules not declared are left alone.
        """
        for schedule in schedules:
            self._check(schedule)
        if len({s.name for s in schedules}) != len(schedules):
            raise InvalidInput("an App declares each schedule name once")
        for _ in range(CAS_ATTEMPTS):
            now = self._clock.now()
            current = await self.store.get_schedules([s.name for s in schedules])
            changes = [_declared(s, old, now) for s, old in zip(schedules, current, strict=True)]
            writes = [change for change in changes if change is not None]
            try:
                stored = await self.store.put_schedules(writes, now=now) if writes else []
            except (StateConflict, AlreadyExists):
                continue
            by_name = {s.name: s for s in current if s is not None}
            by_name.update((s.name, s) for s in stored)
            return [by_name[s.name] for s in schedules]
        raise StateConflict("schedules kept changing while being declared; try again")

    async def get(self, name: str) -> Schedule:
        """Return the schedule; NotFound for an unknown name."""
        (schedule,) = await self.store.get_schedules([name])
        if schedule is None:
            raise NotFound(f"no schedule named {name!r}")
        return schedule

    async def list(self) -> builtins.list[Schedule]:
        """Return every schedule, by name."""
        return await self.store.list_schedules()

    async def pause(self, name: str) -> Schedule:
        """Stop firing ``name`` until resumed; pausing a paused schedule is a no-op."""
        return await self._update(name, lambda s, now: s.replace(paused=True))

    async def resume(self, name: str) -> Schedule:
        """Fire ``name`` again from its next tick after now; ticks while paused are skipped."""

        def resumed(schedule: Schedule, now: float) -> Schedule:
            if not schedule.paused:
                return schedule
            expression = CronExpression(schedule.expression, schedule.tz)
            return schedule.replace(paused=False, next_tick=expression.next_after(now))

        return await self._update(name, resumed)

    async def trigger(self, name: str) -> Published:
        """Publish ``name``'s task now, once, outside its timetable (paused or not).

        The task carries the schedule's name and the time of the trigger as its tick. It
        does not count as a firing for the overlap policy.
        """
        schedule = await self.get(name)
        now = self._clock.now()
        key = f"cron:{name}:trigger:{round(now * 1000)}"
        request = PublishRequest(
            schedule.subject, schedule.payload, idempotency_key=key, schedule=name, tick=now
        )
        (published,) = await self._tasks.publish([request])
        return published

    async def remove(self, name: str) -> None:
        """Delete the schedule; tasks it fired stay. NotFound for an unknown name."""
        (removed,) = await self.store.remove_schedules([name])
        if not removed:
            raise NotFound(f"no schedule named {name!r}")

    def upcoming(self, schedule: Schedule, count: int = 3) -> builtins.list[float]:
        """The next ``count`` ticks of ``schedule`` from its next tick on (none if paused)."""
        if schedule.paused or count < 1:
            return []
        expression = CronExpression(schedule.expression, schedule.tz)
        return [schedule.next_tick, *expression.upcoming(schedule.next_tick, count - 1)]

    async def _update(self, name: str, change: Callable[[Schedule, float], Schedule]) -> Schedule:
        for _ in range(CAS_ATTEMPTS):
            schedule = await self.get(name)
            now = self._clock.now()
            changed = change(schedule, now)
            if changed == schedule:
                return schedule
            try:
                (stored,) = await self.store.put_schedules([changed], now=now)
            except StateConflict:
                continue  # the leader fired it meanwhile: read it again
            return stored
        raise StateConflict(f"schedule {name!r} kept changing; try again")

    def _check(self, schedule: Schedule) -> None:
        define_schedule(
            schedule.name,
            schedule.expression,
            schedule.subject,
            payload=schedule.payload,
            tz=schedule.tz,
            misfire=schedule.misfire,
            overlap=schedule.overlap,
        )
        size = len(codec.dumps(schedule.payload))
        if size > self._platform.settings.max_payload:
            limit = self._platform.settings.max_payload
            raise InvalidInput(
                f"schedule {schedule.name!r}: payload is {size} bytes of JSON, the limit is {limit}"
            )


def _declared(schedule: Schedule, old: Schedule | None, now: float) -> Schedule | None:
    """The write that makes the stored schedule match the declared one; None if it does."""
    expression = CronExpression(schedule.expression, schedule.tz)
    if old is None:
        return schedule.replace(next_tick=expression.next_after(now), revision=0)
    if old.same_definition(schedule):
        return None
    timing = (old.expression, old.tz) != (schedule.expression, schedule.tz)
    next_tick = expression.next_after(now) if timing else old.next_tick
    return old.replace(
        expression=schedule.expression,
        subject=schedule.subject,
        payload=schedule.payload,
        tz=schedule.tz,
        misfire=schedule.misfire,
        overlap=schedule.overlap,
        next_tick=next_tick,
    )


def _choice(kind: type[Misfire] | type[Overlap], value: object, what: str) -> str:
    """The value of ``kind`` that ``value`` names; InvalidInput otherwise."""
    known = [member.value for member in kind]
    text = str(value).lower()
    if text not in known:
        raise InvalidInput(f"{what} must be one of {', '.join(known)}, got {value!r}")
    return text
