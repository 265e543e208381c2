"""The metric families atp exports, in one registry, with bounded label values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DURATION_BUCKETS", "WAIT_BUCKETS", "Metrics", "SubjectLabels", "SubjectSeries"]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 1800.0)  # fmt: skip
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                3600.0)  # fmt: skip
OTHER = "_other"


class SubjectLabels:
    """Maps subjects to label values: the first ``limit`` distinct ones as they are, any
    later one as ``_other``, so the number of series stays bounded."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, subject: str) -> str:
        if subject in self._seen:
            return subject
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(subject)
        return subject


@dataclass(frozen=True, slots=True)
class SubjectSeries:
    """The series of one subject label, looked up once: ``labels()`` is the costly part."""

    enqueued: Any
    dispatched: Any
    started: Any
    succeeded: Any
    failed: Any
    retried: Any
    dead: Any
    cancelled: Any
    recovered: Any
    queue_wait: Any
    ran_ok: Any
    ran_failed: Any
    lateness: dict[str, Any]


class Metrics:
    """Every atp metric family, registered in ``registry``. No label holds a task id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        by_subject = ("subject",)
        self.enqueued = _counter(registry, "enqueued", "Tasks accepted by the store.", by_subject)
        self.dispatched = _counter(registry, "dispatched", "Tasks published to the transport "
                                   "(again after a lost delivery too).", by_subject)  # fmt: skip
        self.started = _counter(registry, "started", "Attempts started by a worker.", by_subject)
        self.succeeded = _counter(registry, "succeeded", "Attempts that succeeded.", by_subject)
        self.failed = _counter(registry, "failed", "Attempts that failed (retried or not).",
                               by_subject)  # fmt: skip
        self.retried = _counter(registry, "retried", "Failed attempts followed by another.",
                                by_subject)  # fmt: skip
        self.dead = _counter(registry, "dead", "Tasks that entered the dead letters.", by_subject)
        self.cancelled = _counter(registry, "cancelled", "Tasks cancelled.", by_subject)
        self.recovered = _counter(registry, "recovered", "Tasks taken back from a vanished "
                                  "worker by the reaper.", by_subject)  # fmt: skip
        self.run_duration = Histogram(
            "atp_task_run_duration_seconds", "Handler run time of one attempt.",
            ("subject", "outcome"), buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "atp_task_queue_wait_seconds", "From when a task was due (ready) to its start.",
            by_subject, buckets=WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.lateness = Histogram(
            "atp_task_schedule_lateness_seconds",
            "From run_at to the start, for delayed, retried and cron tasks.",
            ("subject", "kind"), buckets=WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge("atp_worker_in_flight", "Attempts running in this worker.",
                               ("worker",), registry=registry)  # fmt: skip
        self.leader = Gauge("atp_leader", "1 while this process leads the role, else 0.",
                            ("role",), registry=registry)  # fmt: skip
        self.cron_firings = Counter("atp_cron_firings_total", "Cron ticks that enqueued a task.",
                                    ("schedule",), registry=registry)  # fmt: skip
        self.cron_lateness = Histogram(
            "atp_cron_fire_lateness_seconds", "From a cron tick to its task being enqueued.",
            ("schedule",), buckets=WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.workflow_started = Counter("atp_workflow_runs_started_total",
                                        "Workflow runs started.", ("workflow",),
                                        registry=registry)  # fmt: skip
        self.workflow_runs = Counter("atp_workflow_runs_total",
                                     "Workflow runs finished, by outcome.",
                                     ("workflow", "outcome"), registry=registry)  # fmt: skip
        self._series: dict[str, SubjectSeries] = {}

    def series(self, subject: str) -> SubjectSeries:
        """The series of the label value ``subject`` (already bounded by SubjectLabels)."""
        found = self._series.get(subject)
        if found is None:
            found = self._series[subject] = SubjectSeries(
                **{name: getattr(self, name).labels(subject) for name in _COUNTERS},
                queue_wait=self.queue_wait.labels(subject),
                ran_ok=self.run_duration.labels(subject, "succeeded"),
                ran_failed=self.run_duration.labels(subject, "failed"),
                lateness={kind: self.lateness.labels(subject, kind) for kind in LATENESS_KINDS},
            )
        return found


_COUNTERS = ("enqueued", "dispatched", "started", "succeeded", "failed", "retried", "dead",
             "cancelled", "recovered")  # fmt: skip
LATENESS_KINDS = ("delayed", "retry", "cron")


def _counter(registry: CollectorRegistry, event: str, doc: str, labels: tuple[str, ...]) -> Counter:
    return Counter(f"atp_tasks_{event}_total", doc, labels, registry=registry)
