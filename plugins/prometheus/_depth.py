"""Gauges read from the store and the coordinator: one cached reading behind a collector.

The depths (``TaskStore.counts``), how long READY tasks have waited (``ReadyAges``), the
live workers and their groups (``Registry``), the circuit breakers (``BreakerLedger``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from atp.core.errors import AtpError
from atp.core.flow.breaker import BreakerState
from atp.core.model import ACTIVE_STATES, State
from atp.core.platform import Platform
from atp.core.ports import BreakerLedger, Member, ReadyAges, Registry
from atp.core.worker.presence import ROLE
from atp.plugins.prometheus._backlog import breaker_values, group_backlog, ready_ages

__all__ = [
    "BREAKER_STATE",
    "GROUP_OLDEST_READY_AGE",
    "GROUP_READY_DEPTH",
    "OLDEST_READY_AGE",
    "READY_SCAN",
    "TASK_DEPTH",
    "Depth",
]

log = logging.getLogger("atp.plugins.prometheus")
T = TypeVar("T")

READ_TIMEOUT = 5.0
"""Seconds a scrape waits for each read before serving without it."""
READY_SCAN = 2_000
"""READY tasks ``oldest_ready`` looks at, first handed over first: one script or query,
which on Redis holds the server for a few milliseconds (about 3 µs a task)."""
TASK_DEPTH = "atp_task_depth"
OLDEST_READY_AGE = "atp_oldest_ready_age_seconds"
GROUP_READY_DEPTH = "atp_group_ready_depth"
GROUP_OLDEST_READY_AGE = "atp_group_oldest_ready_age_seconds"
BREAKER_STATE = "atp_breaker_state"


@dataclass(frozen=True, slots=True)
class Reading:
    """What one refresh read at ``at``; a part that was not read, or failed, is None."""

    at: float
    counts: dict[tuple[str, State], int]
    ages: dict[str, float] | None = None
    workers: list[Member] | None = None
    breakers: list[BreakerState] | None = None


class Depth(Collector):
    """``atp_task_depth{subject,state}``, ``atp_dead_letters{subject}``, the ages of the
    oldest READY tasks, the backlog per worker group and the breakers' states.

    ``refresh()`` (awaited before each scrape) reads at most once per ``interval``; the
    collector then serves that reading. Without a platform, or when the store's counts
    failed, every family is left out rather than served stale; a part the backend cannot
    tell (no registry, no breakers) or that failed is left out alone.
    """

    def __init__(
        self,
        interval: float,
        labels: Callable[[str], str],
        errors: Counter,
        groups: Callable[[str], str] | None = None,
    ) -> None:
        self.platform: Platform | None = None
        self._interval = interval
        self._labels = labels
        self._groups = groups or labels
        self.errors = errors
        self._reading: Reading | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        platform = self.platform
        if platform is None:
            return
        async with self._lock:
            now = platform.clock.now()
            if now - self._read_at < self._interval:
                return
            self._reading = await self._read_all(platform, now)
            if self._reading is not None:
                self._read_at = now

    async def _read_all(self, platform: Platform, now: float) -> Reading | None:
        store, coordinator = platform.store, platform.coordinator
        counts, oldest, workers, breakers = await asyncio.gather(
            self._read("store counts", store.counts),
            self._read("ready ages", _oldest(store)),
            self._read("worker registry", _workers(coordinator)),
            self._read("circuit breakers", _breakers(store)),
        )
        if counts is None:
            return None
        ages = None if oldest is None else ready_ages(oldest, now)
        return Reading(now, counts, ages, workers, breakers)

    async def _read(self, what: str, read: Callable[[], Awaitable[T]] | None) -> T | None:
        if read is None:
            return None
        try:
            return await asyncio.wait_for(read(), READ_TIMEOUT)
        except (AtpError, TimeoutError) as exc:
            self.errors.inc()
            log.warning("%s left out of this scrape: reading failed: %s", what, exc)
            return None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = self._reading
        if reading is None:
            return
        yield from self._depths(reading.counts)
        if reading.ages is not None:
            yield self._ages(reading.ages)
        if reading.workers is not None:
            yield from self._group_families(reading, reading.workers)
        if reading.breakers is not None:
            yield self._breaker_family(reading.breakers)

    def _depths(self, counts: dict[tuple[str, State], int]) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            TASK_DEPTH,
            "Tasks in each active state, from the store (READY: waiting for a worker).",
            labels=("subject", "state"),
        )
        dead = GaugeMetricFamily(
            "atp_dead_letters", "Dead tasks kept in the store.", labels=("subject",)
        )
        active: dict[tuple[str, str], int] = {}
        dead_by: dict[str, int] = {}
        for (subject, state), count in counts.items():
            label = self._labels(subject)
            if state in ACTIVE_STATES:
                active[label, str(state)] = active.get((label, str(state)), 0) + count
            elif state is State.DEAD:
                dead_by[label] = dead_by.get(label, 0) + count
        for labels, count in sorted(active.items()):
            depth.add_metric(labels, count)
        for subject, count in sorted(dead_by.items()):
            dead.add_metric((subject,), count)
        yield depth
        yield dead

    def _ages(self, ages: dict[str, float]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            OLDEST_READY_AGE,
            "Seconds the longest waiting READY task of the subject has waited since due.",
            labels=("subject",),
        )
        for (subject,), age in _merged(((self._labels(s),), a) for s, a in ages.items()):
            family.add_metric((subject,), age)
        return family

    def _group_families(
        self, reading: Reading, workers: list[Member]
    ) -> Iterator[GaugeMetricFamily]:
        backlog = group_backlog(workers, reading.counts, reading.ages or {})
        depth = GaugeMetricFamily(
            GROUP_READY_DEPTH,
            "READY tasks of the subjects the group's live workers consume.",
            labels=("group",),
        )
        ready = ((self._groups(group), b.ready) for group, b in backlog.items())
        for group, count in sorted(_summed(ready).items()):
            depth.add_metric((group,), count)
        yield depth
        if reading.ages is None:
            return
        age = GaugeMetricFamily(
            GROUP_OLDEST_READY_AGE,
            "Seconds the longest waiting READY task of the group's subjects has waited.",
            labels=("group",),
        )
        for (group,), value in _merged(
            ((self._groups(g),), b.oldest_age) for g, b in backlog.items()
        ):
            age.add_metric((group,), value)
        yield age

    def _breaker_family(self, breakers: list[BreakerState]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            BREAKER_STATE,
            "Circuit breaker of the group's subject: 0 closed, 1 half-open, 2 open.",
            labels=("group", "subject"),
        )
        values = breaker_values(breakers)
        labelled = (((self._groups(g), self._labels(s)), float(v)) for g, s, v in values)
        for labels, value in _merged(labelled):
            family.add_metric(labels, value)
        return family


def _merged(items: Iterable[tuple[tuple[str, ...], float]]) -> list[tuple[tuple[str, ...], float]]:
    """The largest value per label set (several subjects may share ``_other``), sorted."""
    found: dict[tuple[str, ...], float] = {}
    for labels, value in items:
        found[labels] = max(value, found.get(labels, value))
    return sorted(found.items())


def _summed(items: Iterable[tuple[str, int]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for label, count in items:
        found[label] = found.get(label, 0) + count
    return found


def _oldest(store: object) -> Callable[[], Awaitable[dict[str, float]]] | None:
    if not isinstance(store, ReadyAges):
        return None
    return lambda: store.oldest_ready(limit=READY_SCAN)


def _workers(coordinator: object) -> Callable[[], Awaitable[list[Member]]] | None:
    if not isinstance(coordinator, Registry):
        return None
    return lambda: coordinator.members(ROLE)


def _breakers(store: object) -> Callable[[], Awaitable[list[BreakerState]]] | None:
    return store.breakers if isinstance(store, BreakerLedger) else None
