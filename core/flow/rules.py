"""Flow-control rules: how many tasks run at once, how fast, and which subjects are paused.

A limit names what it applies to (ADR 0038):

- a subject pattern (``payments.*``): every task whose subject matches shares the
  rule's one budget (one concurrency slot set, one token bucket, one window);
- a key pattern (``key=True``): ``customer:42`` names one key, ``customer:*`` every key
  starting ``customer:``, ``*`` every key. Each key gets a budget of its own. A task's
  ``concurrency_key`` meets the concurrency limits of key rules, its ``rate_key`` their
  rate and window limits; of the key rules matching a key, the most specific applies (the
  exact key, else the longest prefix). A ``concurrency_key`` no rule names runs one at a
  time (``DEFAULT_KEY_CONCURRENCY``).

``Rules.gates`` turns the rules into the ``Gates`` one task must pass, named so that every
process computes the same names: the ledger (``atp.core.ports.FlowLedger``) keeps the
slots, buckets and windows under those names and never matches a pattern itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.model import Task
from atp.core.quoting import quote
from atp.core.subjects import compile_pattern, validate_pattern

__all__ = [
    "DEFAULT_KEY_CONCURRENCY",
    "MAX_KEY_LENGTH",
    "NO_GATES",
    "PRIORITY_AGEING",
    "PRIORITY_LEVELS",
    "Bucket",
    "Gates",
    "Limit",
    "Rate",
    "Rules",
    "Slot",
    "Window",
    "limit_from_dict",
    "limit_to_dict",
    "parse_rate",
    "pause_waiters",
    "rank",
    "validate_key",
    "validate_target",
]

DEFAULT_KEY_CONCURRENCY = 1
"""Tasks of one ``concurrency_key`` running at once when no key rule names the key."""
PRIORITY_AGEING = 10.0
"""Seconds of waiting worth one priority level: a task waiting behind a full slot is
woken before any task of its group created more than ``PRIORITY_AGEING * (their
priority - its priority)`` seconds after it (ADR 0039)."""
PRIORITY_LEVELS = 9
"""Priorities beyond ±9 rank as ±9 among waiting tasks, so ageing bounds how long the
lowest waits behind a flood of the highest: ``2 * 9 * PRIORITY_AGEING`` seconds."""
MAX_WEIGHT = 1000
MAX_KEY_LENGTH = 200
MAX_LIMIT = 1_000_000
MAX_PERIOD = 86400.0
_KEY = re.compile(r"[^\s*]+\Z")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PAUSE_PREFIX = "p:"
"""Waiter lists of tasks held by a pause are named ``p:<subject>``."""


def validate_key(value: object, what: str) -> str:
    """Return ``value`` if it is a valid task key (1 to 200 characters, no whitespace or
    ``*``); raise InvalidInput naming ``what``."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string, got {quote(value)}")
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidInput(f"{what} is {len(value)} characters, the limit is {MAX_KEY_LENGTH}")
    if not _KEY.match(value):
        raise InvalidInput(f"{what} {quote(value)} may hold no whitespace and no '*'")
    return value


def validate_target(target: object, *, key: bool) -> str:
    """Return a limit's target if valid: a subject pattern, or with ``key`` a key pattern
    (a key, or a key prefix ending in ``*``); raise InvalidInput."""
    if not key:
        return validate_pattern(target)
    if isinstance(target, str) and target.endswith("*"):
        if target != "*":
            validate_key(target[:-1], "key pattern")
        return target
    return validate_key(target, "key pattern")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` per ``per`` seconds, written ``10/s``, ``100/m``, ``5/30s``."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise InvalidInput(f"a rate's count must be a whole number, got {quote(self.count)}")
        if not 1 <= self.count <= MAX_LIMIT:
            raise InvalidInput(f"a rate's count must be from 1 to {MAX_LIMIT}, got {self.count}")
        per = self.per
        if isinstance(per, bool) or not isinstance(per, int | float):
            raise InvalidInput(f"a rate's period must be seconds, got {quote(per)}")
        if not (math.isfinite(per) and 0.001 <= per <= MAX_PERIOD):
            raise InvalidInput(
                f"a rate's period must be from 1ms to {MAX_PERIOD:g}s, got {quote(per)}"
            )
        object.__setattr__(self, "per", float(per))

    @property
    def per_second(self) -> float:
        return self.count / self.per

    def __str__(self) -> str:
        return f"{self.count}/{self.per:g}s"


def parse_rate(value: object, what: str = "rate") -> Rate:
    """Return the Rate written in ``value`` (``10/s``, ``100/m``, ``5/30s``, ``1/2.5h``)."""
    if isinstance(value, Rate):
        return value
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"{what}: {quote(value)} is not a rate (examples: 10/s, 100/m, 5/30s)")
    count, number, unit = match.groups()
    per = (float(number) if number else 1.0) * _UNITS[unit or "s"]
    try:
        return Rate(int(count), per)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Limit:
    """One rule: a concurrency limit, a token bucket and/or a sliding window on a target."""

    target: str
    """A subject pattern, or a key pattern when ``key``."""
    key: bool = False
    concurrency: int | None = None
    """Tasks running at once, across every worker."""
    rate: Rate | None = None
    """Token bucket refill: runs started per period, on average."""
    burst: int | None = None
    """Token bucket size: runs that may start at once; default 1 (evenly spaced)."""
    window: Rate | None = None
    """Sliding window: at most ``count`` runs started in any ``per`` seconds."""
    weight: int | None = None
    """Key rules only: the share of the fair groups (``group_key``) it matches; a group of
    weight 3 is woken three times as often as one of weight 1 while both wait."""
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        validate_target(self.target, key=self.key)
        if all(getattr(self, f) is None for f in ("concurrency", "rate", "window", "weight")):
            raise InvalidInput(
                f"limit on {self.name}: give a concurrency, a rate, a window or a weight"
                " (or remove it)"
            )
        if self.weight is not None:
            if not self.key:
                raise InvalidInput(f"limit on {self.name}: a weight is for key rules (--key)")
            _whole(self.weight, "weight", MAX_WEIGHT)
        _whole(self.concurrency, "concurrency")
        _whole(self.burst, "burst")
        if self.burst is not None and self.rate is None:
            raise InvalidInput(f"limit on {self.name}: a burst needs a rate")

    @property
    def name(self) -> str:
        """What identifies the rule: ``subject:<pattern>`` or ``key:<pattern>``."""
        return f"{'key' if self.key else 'subject'}:{self.target}"

    def matches_key(self, key: str) -> bool:
        target = self.target
        return key.startswith(target[:-1]) if target.endswith("*") else key == target

    @property
    def specificity(self) -> tuple[int, int]:
        """Higher wins among key rules matching one key: the exact key, then longer prefixes."""
        exact = not self.target.endswith("*")
        return (int(exact), len(self.target))


def _whole(value: int | None, what: str, most: int = MAX_LIMIT) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidInput(f"{what} must be a whole number from 1 to {most}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Slot:
    """A concurrency budget: at most ``limit`` holders at once."""

    name: str
    limit: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket (GCRA): ``rate`` tokens a second, at most ``burst`` at once."""

    name: str
    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding window: at most ``count`` admissions in any ``period`` seconds."""

    name: str
    count: int
    period: float


@dataclass(frozen=True, slots=True)
class Gates:
    """What one task must pass before it runs."""

    slots: tuple[Slot, ...] = ()
    buckets: tuple[Bucket, ...] = ()
    windows: tuple[Window, ...] = ()
    paused: bool = False

    @property
    def empty(self) -> bool:
        return not (self.slots or self.buckets or self.windows or self.paused)


NO_GATES = Gates()


@dataclass(frozen=True, slots=True)
class Rules:
    """Every limit and pause, as one ledger holds them; ``version`` grows on each change."""

    limits: tuple[Limit, ...] = ()
    pauses: tuple[str, ...] = ()
    version: int = 0
    _memo: dict[tuple[str, str | None, str | None], Gates] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def empty(self) -> bool:
        return not self.limits and not self.pauses

    def paused(self, subject: str) -> bool:
        return any(compile_pattern(pattern)(subject) for pattern in self.pauses)

    def gates(self, task: Task) -> Gates:
        """The gates ``task`` must pass, memoised per (subject, keys)."""
        key = (task.subject, task.concurrency_key, task.rate_key)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) > 10_000:
                self._memo.clear()
            found = self._memo[key] = self._gates(*key)
        return found

    def _gates(self, subject: str, concurrency_key: str | None, rate_key: str | None) -> Gates:
        slots: list[Slot] = []
        buckets: list[Bucket] = []
        windows: list[Window] = []
        for limit in self.limits:
            if not limit.key and compile_pattern(limit.target)(subject):
                _add(limit, f"s:{limit.target}", slots, buckets, windows, concurrency=True)
        if concurrency_key is not None:
            rule = self._key_rule(concurrency_key, "concurrency")
            limit_of = rule.concurrency if rule and rule.concurrency else DEFAULT_KEY_CONCURRENCY
            slots.append(Slot(f"k:{concurrency_key}", limit_of))
        if rate_key is not None:
            rule = self._key_rule(rate_key, "rate", "window")
            if rule is not None:
                _add(rule, f"k:{rate_key}", slots, buckets, windows, concurrency=False)
        return Gates(tuple(slots), tuple(buckets), tuple(windows), self.paused(subject))

    def weight(self, group_key: str | None) -> int:
        """The weight of a fair group: the most specific key rule with a weight, else 1."""
        if group_key is None:
            return 1
        rule = self._key_rule(group_key, "weight")
        return rule.weight if rule is not None and rule.weight is not None else 1

    def _key_rule(self, key: str, *fields: str) -> Limit | None:
        found = [
            limit
            for limit in self.limits
            if limit.key
            and limit.matches_key(key)
            and any(getattr(limit, name) is not None for name in fields)
        ]
        return max(found, key=lambda limit: limit.specificity) if found else None


def _add(
    limit: Limit,
    name: str,
    slots: list[Slot],
    buckets: list[Bucket],
    windows: list[Window],
    *,
    concurrency: bool,
) -> None:
    if concurrency and limit.concurrency is not None:
        slots.append(Slot(name, limit.concurrency))
    if limit.rate is not None:
        buckets.append(Bucket(name, limit.rate.per_second, limit.burst or 1))
    if limit.window is not None:
        windows.append(Window(name, limit.window.count, limit.window.per))


def limit_to_dict(limit: Limit) -> dict[str, Any]:
    """The JSON object of a limit, as ledgers store it and the APIs carry it."""
    data: dict[str, Any] = {"target": limit.target, "key": limit.key}
    if limit.concurrency is not None:
        data["concurrency"] = limit.concurrency
    if limit.rate is not None:
        data["rate"] = {"count": limit.rate.count, "per": limit.rate.per}
    if limit.burst is not None:
        data["burst"] = limit.burst
    if limit.window is not None:
        data["window"] = {"count": limit.window.count, "per": limit.window.per}
    if limit.weight is not None:
        data["weight"] = limit.weight
    data["updated_at"] = limit.updated_at
    return data


def limit_from_dict(data: Mapping[str, Any]) -> Limit:
    """The Limit ``limit_to_dict`` wrote; raise InvalidInput for anything malformed."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"a limit must be an object, got {quote(data)}")
    return Limit(
        target=data.get("target"),  # type: ignore[arg-type]
        key=bool(data.get("key", False)),
        concurrency=data.get("concurrency"),
        rate=_rate_from(data.get("rate")),
        burst=data.get("burst"),
        window=_rate_from(data.get("window")),
        weight=data.get("weight"),
        updated_at=float(data.get("updated_at", 0.0)),
    )


def _rate_from(value: object) -> Rate | None:
    if value is None or isinstance(value, Rate):
        return value
    if isinstance(value, str):
        return parse_rate(value)
    if not isinstance(value, Mapping):
        raise InvalidInput(f"a rate must be an object with count and per, got {quote(value)}")
    return Rate(value.get("count"), value.get("per"))  # type: ignore[arg-type]


def rank(task: Task) -> float:
    """A waiting task's order within its group, lowest first (``Wait.rank``): its creation
    time less its priority's worth of waiting, so it ages a level per PRIORITY_AGEING."""
    level = max(-PRIORITY_LEVELS, min(PRIORITY_LEVELS, task.priority))
    return task.created_at - level * PRIORITY_AGEING


def pause_waiters(subject: str) -> str:
    """The waiter list of tasks of ``subject`` held while it is paused."""
    return PAUSE_PREFIX + subject
