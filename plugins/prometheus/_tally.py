"""The per-subject task metrics, kept as plain numbers and served by one collector.

They move for every task, from the hooks and the interceptor on the event loop. A
labelled ``prometheus_client`` child takes a lock and three or four calls per update
(about a microsecond each); here an update is an integer addition, and a histogram's a
bisect and two. ``TaskFamilies.collect`` serves what those children would: the same
families in the same order, with the same samples, labels and values, ``_created``
included unless prometheus_client's created series are turned off.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import metrics as client_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["COUNTERS", "LATENESS_KINDS", "Observations", "SubjectSeries", "TaskFamilies"]

COUNTERS = {
    "enqueued": "Tasks accepted by the store.",
    "dispatched": "Tasks published to the transport (again after a lost delivery too).",
    "started": "Attempts started by a worker.",
    "succeeded": "Attempts that succeeded.",
    "failed": "Attempts that failed (retried or not).",
    "retried": "Failed attempts followed by another.",
    "dead": "Tasks that entered the dead letters.",
    "cancelled": "Tasks cancelled.",
    "recovered": "Tasks taken back from a vanished worker by the reaper.",
}
"""``atp_tasks_<event>_total{subject}``: each event and its help text, in serving order."""
LATENESS_KINDS = ("delayed", "retry", "cron")
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds, 5 ms to 5 min; each histogram adds its own last bucket."""
DURATION_BUCKETS = (*_BUCKETS, 1800.0)
WAIT_BUCKETS = (*_BUCKETS, 3600.0)
RUN_DURATION = ("atp_task_run_duration_seconds", "Handler run time of one attempt.")
QUEUE_WAIT = ("atp_task_queue_wait_seconds", "From when a task was due (ready) to its start.")
LATENESS = (
    "atp_task_schedule_lateness_seconds",
    "From run_at to the start, for delayed, retried and cron tasks.",
)


class Observations:
    """One histogram series: how many values fell in each bucket (the last is +Inf; a
    value on a bound is in that bound's bucket) and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        if value != value:  # NaN: in no bucket, as prometheus_client has it
            self.total += value
            return
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class SubjectSeries:
    """Every series of one subject label; the counters are ``COUNTERS``' events."""

    __slots__ = (*COUNTERS, "created", "lateness", "queue_wait", "ran_failed", "ran_ok")

    def __init__(self) -> None:
        self.enqueued = self.dispatched = self.started = self.succeeded = self.failed = 0
        self.retried = self.dead = self.cancelled = self.recovered = 0
        self.queue_wait = Observations(WAIT_BUCKETS)
        self.ran_ok = Observations(DURATION_BUCKETS)
        self.ran_failed = Observations(DURATION_BUCKETS)
        self.lateness = {kind: Observations(WAIT_BUCKETS) for kind in LATENESS_KINDS}
        self.created = time.time()


class TaskFamilies(Collector):
    """The counters, then run duration, queue wait and lateness, by subject label."""

    def __init__(self) -> None:
        self.series: dict[str, SubjectSeries] = {}

    def of(self, label: str) -> SubjectSeries:
        """The series of the label value ``label``, made on first use."""
        found = self.series.get(label)
        if found is None:
            found = self.series[label] = SubjectSeries()
        return found

    def describe(self) -> Iterator[Metric]:
        for event, doc in COUNTERS.items():
            yield Metric(f"atp_tasks_{event}", doc, "counter")
        for name, doc in (RUN_DURATION, QUEUE_WAIT, LATENESS):
            yield Metric(name, doc, "histogram")

    def collect(self) -> Iterator[Metric]:
        created = getattr(client_metrics, "_use_created", True)
        series = list(self.series.items())
        for event, doc in COUNTERS.items():
            family = Metric(f"atp_tasks_{event}", doc, "counter")
            for subject, found in series:
                family.add_sample(
                    f"{family.name}_total", {"subject": subject}, float(getattr(found, event))
                )
                if created:
                    family.add_sample(f"{family.name}_created", {"subject": subject}, found.created)
            yield family
        yield _histogram(
            RUN_DURATION,
            created,
            [
                ({"subject": subject, "outcome": outcome}, found.created, observed)
                for subject, found in series
                for outcome, observed in (("succeeded", found.ran_ok), ("failed", found.ran_failed))
            ],
        )
        yield _histogram(
            QUEUE_WAIT,
            created,
            [({"subject": subject}, found.created, found.queue_wait) for subject, found in series],
        )
        yield _histogram(
            LATENESS,
            created,
            [
                ({"subject": subject, "kind": kind}, found.created, found.lateness[kind])
                for subject, found in series
                for kind in LATENESS_KINDS
            ],
        )


Child = tuple[dict[str, str], float, Observations]
"""A histogram series: its labels, when it was made, what it observed."""


def _histogram(family: tuple[str, str], created: bool, children: list[Child]) -> Metric:
    """A histogram family as prometheus_client serves it: per child, the cumulative
    buckets, ``_count``, ``_sum`` and ``_created``."""
    name, doc = family
    metric = Metric(name, doc, "histogram")
    for labels, at, observed in children:
        count = 0.0
        for le, n in zip(_le(observed.bounds), observed.counts, strict=True):
            count += n
            metric.add_sample(f"{name}_bucket", {**labels, "le": le}, count)
        metric.add_sample(f"{name}_count", dict(labels), count)
        metric.add_sample(f"{name}_sum", dict(labels), observed.total)
        if created:
            metric.add_sample(f"{name}_created", dict(labels), at)
    return metric


_LE: dict[tuple[float, ...], tuple[str, ...]] = {}


def _le(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` label of each bucket, +Inf last, as prometheus_client writes them."""
    found = _LE.get(bounds)
    if found is None:
        found = _LE[bounds] = tuple(floatToGoString(b) for b in (*bounds, math.inf))  # type: ignore[no-untyped-call]
    return found
