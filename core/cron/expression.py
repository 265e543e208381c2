"""Cron expressions read in a time zone, with the DST rules of ADR 0015.

croniter computes the wall-clock matches; this module turns them into instants (seconds
since the epoch) and applies two rules on top:

- A wall time that does not exist (clocks go forward) fires once, at the first instant
  after the gap. croniter does this already; two matches landing on the same instant
  fire once, since ticks strictly increase.
- A wall time that happens twice (clocks go back) fires at its first occurrence only,
  unless the hour field is ``*``: an expression over every hour follows elapsed time and
  fires in both passes of the repeated hour, as Vixie cron does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from atp.core.errors import InvalidInput

__all__ = ["MACROS", "CronExpression", "zone"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_LENGTH = 256


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; InvalidInput for an unknown one."""
    if not isinstance(name, str) or not name or len(name) > MAX_LENGTH:
        raise InvalidInput(f"time zone must be an IANA name such as 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from exc


class CronExpression:
    """A validated cron expression in a time zone; yields its ticks as epoch seconds.

    Five fields (minute hour day-of-month month day-of-week), six with a seconds field
    first, or a macro (``@hourly``, ``@daily``, ...). Raises InvalidInput for anything
    else, for an unknown time zone, and for an expression that never fires.
    """

    def __init__(self, text: str, tz: str = "UTC") -> None:
        self.text = text
        self.tz = tz
        self.zone = zone(tz)
        fields = _fields(text)
        self.has_seconds = len(fields) == 6
        self._expr = " ".join(fields)
        self._hourly = fields[-4] == "*"
        try:  # parsed once; each walk copies one and moves it (parsing is most of the cost)
            self._forward = croniter(self._expr, 0.0, second_at_beginning=True)
            self._backward = croniter(self._expr, 0.0, is_prev=True, second_at_beginning=True)
        except (CroniterError, ValueError, KeyError, IndexError) as exc:
            raise InvalidInput(f"bad cron expression {text!r}: {exc}") from exc
        self.next_after(0.0)  # refuse one that never matches (``0 0 30 2 *``)

    def next_after(self, epoch: float) -> float:
        """The first tick strictly after ``epoch``."""
        return next(self.ticks(epoch))

    def previous_before(self, epoch: float) -> float | None:
        """The last tick strictly before ``epoch``, or None if there is none."""
        matches = self._walk(self._backward, epoch)
        for _ in range(_MAX_STEPS):
            try:
                tick = float(matches.get_prev(float))
            except CroniterBadDateError:
                return None
            if tick < epoch and self._keeps(tick):
                return tick
        return None  # pragma: no cover - a real expression matches long before

    def ticks(self, after: float) -> Iterator[float]:
        """Yield the ticks strictly after ``after``, in order, for ever."""
        matches = self._walk(self._forward, after)
        last = after
        while True:
            try:
                tick = float(matches.get_next(float))
            except CroniterBadDateError as exc:
                raise InvalidInput(f"cron expression {self.text!r} never fires") from exc
            if tick > last and self._keeps(tick):
                last = tick
                yield tick

    def upcoming(self, after: float, count: int) -> list[float]:
        """The next ``count`` ticks strictly after ``after``."""
        ticks = self.ticks(after)
        return [next(ticks) for _ in range(count)]

    def _walk(self, template: croniter, start: float) -> croniter:
        """A fresh walker over the matches, from ``start`` in this zone."""
        matches = copy.copy(template)
        matches.set_current(datetime.fromtimestamp(start, self.zone), force=True)
        return matches

    def _keeps(self, tick: float) -> bool:
        """False for a repeated wall time's second pass, unless the hour field is ``*``."""
        return self._hourly or not _second_pass(tick, self.zone)

    def __repr__(self) -> str:
        return f"CronExpression({self.text!r}, tz={self.tz!r})"


_MAX_STEPS = 1000


def _second_pass(tick: float, tz: ZoneInfo) -> bool:
    """Whether ``tick`` is the second occurrence of its wall-clock time."""
    wall = datetime.fromtimestamp(tick, tz).replace(tzinfo=None)
    return wall.replace(tzinfo=tz, fold=0).timestamp() < tick


def _fields(text: str) -> list[str]:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
        raise InvalidInput(f"cron expression must be a non-empty string, got {text!r}")
    stripped = text.strip()
    if stripped.startswith("@"):
        macro = MACROS.get(stripped.lower())
        if macro is None:
            known = ", ".join(MACROS)
            raise InvalidInput(f"unknown cron macro {stripped!r}; known: {known}")
        return macro.split()
    fields = stripped.split()
    if len(fields) not in (5, 6):
        raise InvalidInput(
            f"cron expression {text!r} has {len(fields)} fields; give 5 (minute hour "
            "day-of-month month day-of-week) or 6 (a seconds field first)"
        )
    return fields
