"""Depth gauges read from the store: a cached ``TaskStore.counts`` behind a collector."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from atp.core.errors import AtpError
from atp.core.model import ACTIVE_STATES, State
from atp.core.platform import Platform

__all__ = ["Depth"]

log = logging.getLogger("atp.plugins.prometheus")

READ_TIMEOUT = 5.0
"""Seconds a scrape waits for the store before serving without depth."""


class Depth(Collector):
    """``atp_task_depth{subject,state}`` and ``atp_dead_letters{subject}`` from the store.

    ``refresh()`` (awaited before each scrape) asks the store at most once per
    ``interval``; the collector then serves that reading. Without a platform, or when the
    store did not answer, the two families are left out rather than served stale.
    """

    def __init__(self, interval: float, labels: Callable[[str], str], errors: Counter) -> None:
        self.platform: Platform | None = None
        self._interval = interval
        self._labels = labels
        self.errors = errors
        self._counts: dict[tuple[str, State], int] | None = None
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
            try:
                self._counts = await asyncio.wait_for(platform.store.counts(), READ_TIMEOUT)
            except (AtpError, TimeoutError) as exc:
                self.errors.inc()
                self._counts = None
                log.warning("depth gauges left out of this scrape: store counts failed: %s", exc)
                return
            self._read_at = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._counts
        if counts is None:
            return
        depth = GaugeMetricFamily(
            "atp_task_depth",
            "Tasks in each active state, from the store.",
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
