"""Cron schedules as the ScheduleStore keeps them, and their JSON form.

A ``Schedule`` is the definition a user gives (expression, time zone, subject, payload,
policies) plus the state the scheduler leader keeps on it: the next tick to fire and what
the last firing did. ``revision`` grows on every write, so every change is a
compare-and-set (see ``ScheduleStore`` in ``atp.core.ports``).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from atp.core.errors import AlreadyExists, InvalidInput, StateConflict
from atp.core.model import JSON

__all__ = [
    "Advance",
    "Misfire",
    "Overlap",
    "Schedule",
    "advanced",
    "name_taken",
    "revision_changed",
    "schedule_from_dict",
    "schedule_to_dict",
    "stored_copy",
]


class Misfire(enum.StrEnum):
    """What the leader does with ticks missed by more than the grace (downtime)."""

    SKIP = "skip"
    """Fire none of them; carry on from the next tick."""
    ONCE = "once"
    """Fire the latest missed tick only. The default."""
    ALL = "all"
    """Fire every missed tick, at most ``MAX_CATCH_UP`` of them (the latest)."""


class Overlap(enum.StrEnum):
    """What the leader does with a tick while the previous firing's task has not finished."""

    ALLOW = "allow"
    """Fire anyway. The default."""
    SKIP = "skip"
    """Skip the tick while the last fired task is SCHEDULED, READY or RUNNING."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """One named cron schedule: what to publish, when, and how far firing has got."""

    name: str
    expression: str
    """Five fields, six with seconds first, or a macro such as ``@hourly``."""
    subject: str
    payload: JSON = None
    tz: str = "UTC"
    """IANA time zone the expression is read in."""
    misfire: Misfire = Misfire.ONCE
    overlap: Overlap = Overlap.ALLOW
    paused: bool = False
    next_tick: float = 0.0
    """The next tick to fire, seconds since the epoch."""
    last_tick: float | None = None
    """The last tick fired (not skipped)."""
    last_task: str | None = None
    """The id of the task the last tick fired."""
    last_fired_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 0
    """0 for a schedule not stored yet; the store adds one on every write."""

    def replace(self, **changes: Any) -> Schedule:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def same_definition(self, other: Schedule) -> bool:
        """Whether ``other`` asks for the same firings (name, state and history aside)."""
        fields = ("expression", "subject", "payload", "tz", "misfire", "overlap")
        return all(getattr(self, f) == getattr(other, f) for f in fields)


@dataclass(frozen=True, slots=True)
class Advance:
    """The leader's record of one round of a schedule: compare-and-set on ``revision``."""

    name: str
    revision: int
    """The revision the leader read; the write applies only if it is still current."""
    next_tick: float
    last_tick: float | None = None
    """The latest tick fired this round; None when the round fired nothing (skipped)."""
    last_task: str | None = None


def stored_copy(schedule: Schedule, current: Schedule | None, now: float) -> Schedule:
    """What a store keeps when ``schedule`` is put over ``current`` (None: created), the
    revision check passed: one revision more, stamped ``now``."""
    created = now if current is None else current.created_at
    return schedule.replace(revision=schedule.revision + 1, created_at=created, updated_at=now)


def name_taken(schedule: Schedule) -> AlreadyExists:
    """The error of a create (revision 0) whose name is stored already."""
    return AlreadyExists(f"a schedule named {schedule.name!r} exists already")


def revision_changed(schedule: Schedule) -> StateConflict:
    """The error of a replace whose revision is no longer the stored one."""
    return StateConflict(
        f"schedule {schedule.name!r} changed or was removed since revision "
        f"{schedule.revision}; nothing was changed"
    )


def advanced(schedule: Schedule, advance: Advance, now: float) -> Schedule:
    """The schedule after the leader recorded ``advance`` (its revision check passed)."""
    schedule = schedule.replace(next_tick=advance.next_tick, revision=schedule.revision + 1)
    if advance.last_tick is None:
        return schedule
    return schedule.replace(
        last_tick=advance.last_tick, last_task=advance.last_task, last_fired_at=now
    )


def schedule_to_dict(schedule: Schedule) -> dict[str, Any]:
    """The schedule as a JSON object (every field, enums as their values)."""
    data = dataclasses.asdict(schedule)
    data["misfire"] = schedule.misfire.value
    data["overlap"] = schedule.overlap.value
    return data


def schedule_from_dict(data: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from ``schedule_to_dict``; unknown keys are ignored (newer atp)."""
    known = {f.name for f in dataclasses.fields(Schedule)}
    try:
        values = {key: value for key, value in data.items() if key in known}
        values["misfire"] = Misfire(values.get("misfire", Misfire.ONCE))
        values["overlap"] = Overlap(values.get("overlap", Overlap.ALLOW))
        return Schedule(**values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"not a stored schedule: {exc}") from exc
