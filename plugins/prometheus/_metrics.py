"""The metric families atp exports, in one registry, with bounded label values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from atp.plugins.prometheus._tally import (
    DURATION_BUCKETS,
    LATENESS_KINDS,
    WAIT_BUCKETS,
    SubjectSeries,
    TaskFamilies,
)

__all__ = [
    "BREAKER_TRANSITIONS",
    "DURATION_BUCKETS",
    "LATENESS_KINDS",
    "WAIT_BUCKETS",
    "Metrics",
    "SubjectLabels",
    "SubjectSeries",
]

OTHER = "_other"
BREAKER_TRANSITIONS = "atp_breaker_transitions_total"


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


class Metrics:
    """Every atp metric family, registered in ``registry``. No label holds a task id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.tasks = TaskFamilies()
        """The ``atp_tasks_*_total`` counters and the three task histograms, by subject."""
        registry.register(self.tasks)
        self.in_flight = Gauge(
            "atp_worker_in_flight",
            "Attempts running in this worker.",
            ("worker",),
            registry=registry,
        )
        self.leader = Gauge(
            "atp_leader",
            "1 while this process leads the role, else 0.",
            ("role",),
            registry=registry,
        )
        self.cron_firings = Counter(
            "atp_cron_firings_total",
            "Cron ticks that enqueued a task.",
            ("schedule",),
            registry=registry,
        )
        self.cron_lateness = Histogram(
            "atp_cron_fire_lateness_seconds",
            "From a cron tick to its task being enqueued.",
            ("schedule",),
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.workflow_started = Counter(
            "atp_workflow_runs_started_total",
            "Workflow runs started.",
            ("workflow",),
            registry=registry,
        )
        self.workflow_runs = Counter(
            "atp_workflow_runs_total",
            "Workflow runs finished, by outcome.",
            ("workflow", "outcome"),
            registry=registry,
        )
        self.breaker_transitions = Counter(
            BREAKER_TRANSITIONS,
            "Circuit breaker changes this process made, by the circuit entered "
            "(open, half-open, closed).",
            ("group", "subject", "circuit"),
            registry=registry,
        )

    def series(self, subject: str) -> SubjectSeries:
        """The series of the label value ``subject`` (already bounded by SubjectLabels)."""
        return self.tasks.of(subject)
