"""The Prometheus plugin's plain-number task metrics serve what prometheus_client would.

``Reference`` is the families as they were before ``TaskFamilies``: real labelled
Counter and Histogram children, made per subject in the same order. Both get the same
observations and their expositions must match sample for sample.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
)
from prometheus_client import metrics as client_metrics

from atp.core.model import JSON, Task
from atp.core.worker.interceptors import HandlerCall
from atp.plugins.prometheus._plugin import InFlight
from atp.plugins.prometheus._tally import (
    COUNTERS,
    DURATION_BUCKETS,
    LATENESS,
    LATENESS_KINDS,
    QUEUE_WAIT,
    RUN_DURATION,
    WAIT_BUCKETS,
    SubjectSeries,
    TaskFamilies,
)
from tests.observability_support import parse

NOW = 1_767_225_600.25


class Reference:
    """The task families on prometheus_client's own children."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counters = {
            event: Counter(f"atp_tasks_{event}_total", doc, ("subject",), registry=registry)
            for event, doc in COUNTERS.items()
        }
        self.run = Histogram(
            *RUN_DURATION, ("subject", "outcome"), buckets=DURATION_BUCKETS, registry=registry
        )
        self.wait = Histogram(*QUEUE_WAIT, ("subject",), buckets=WAIT_BUCKETS, registry=registry)
        self.late = Histogram(
            *LATENESS, ("subject", "kind"), buckets=WAIT_BUCKETS, registry=registry
        )
        self._seen: set[str] = set()

    def touch(self, subject: str) -> None:
        """Make every child of ``subject``, as the old ``Metrics.series`` did."""
        if subject in self._seen:
            return
        self._seen.add(subject)
        for counter in self.counters.values():
            counter.labels(subject)
        self.wait.labels(subject)
        self.run.labels(subject, "succeeded")
        self.run.labels(subject, "failed")
        for kind in LATENESS_KINDS:
            self.late.labels(subject, kind)


@dataclass
class Both:
    """The same observations, told to a TaskFamilies and to the Reference."""

    tally: CollectorRegistry = field(default_factory=CollectorRegistry)
    reference: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.families = TaskFamilies()
        self.tally.register(self.families)
        self.old = Reference(self.reference)

    def count(self, subject: str, event: str, amount: int = 1) -> None:
        self.old.touch(subject)
        setattr(
            self.families.of(subject), event, getattr(self.families.of(subject), event) + amount
        )
        self.old.counters[event].labels(subject).inc(amount)

    def ran(self, subject: str, ok: bool, seconds: float) -> None:
        self.old.touch(subject)
        series: SubjectSeries = self.families.of(subject)
        (series.ran_ok if ok else series.ran_failed).observe(seconds)
        self.old.run.labels(subject, "succeeded" if ok else "failed").observe(seconds)

    def waited(self, subject: str, seconds: float) -> None:
        self.old.touch(subject)
        self.families.of(subject).queue_wait.observe(seconds)
        self.old.wait.labels(subject).observe(seconds)

    def late(self, subject: str, kind: str, seconds: float) -> None:
        self.old.touch(subject)
        self.families.of(subject).lateness[kind].observe(seconds)
        self.old.late.labels(subject, kind).observe(seconds)


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides stamp ``_created`` with time.time(): make it one value."""
    monkeypatch.setattr(time, "time", lambda: NOW)


@pytest.fixture(params=["created", "no created"])
def created_series(request: pytest.FixtureRequest) -> Iterator[None]:
    before = getattr(client_metrics, "_use_created", True)
    (enable_created_metrics if request.param == "created" else disable_created_metrics)()
    yield
    (enable_created_metrics if before else disable_created_metrics)()


def observe_everything(both: Both) -> None:
    for subject in ("orders.close", "sms.send", 'a"quoted\\subject\n'):
        both.count(subject, "enqueued", 3)
        both.count(subject, "started")
    both.count("orders.close", "retried", 2)
    both.count("sms.send", "dead")
    for bound in (*DURATION_BUCKETS, 0.0, 1e-9, 0.0051, 7.5, 1800.0001, math.inf, math.nan):
        both.ran("orders.close", True, bound)
    both.ran("orders.close", False, 0.3)
    for bound in (*WAIT_BUCKETS, 3600.5, 0.0, math.nan):
        both.waited("sms.send", bound)
    for kind, seconds in (
        ("delayed", 0.005),
        ("retry", 12.0),
        ("cron", 3600.0),
        ("cron", math.nan),
        ("retry", 0.0),
    ):
        both.late("orders.close", kind, seconds)


@pytest.mark.usefixtures("fixed_time", "created_series")
def test_the_exposition_is_what_prometheus_client_children_give():
    both = Both()
    observe_everything(both)
    assert generate_latest(both.tally) == generate_latest(both.reference)


@pytest.mark.usefixtures("fixed_time")
def test_no_observation_serves_empty_families_as_prometheus_client_does():
    both = Both()
    assert generate_latest(both.tally) == generate_latest(both.reference)
    both.count("quiet", "enqueued", 0)
    assert generate_latest(both.tally) == generate_latest(both.reference)


@pytest.mark.usefixtures("fixed_time")
def test_samples_parse_to_the_same_values():
    both = Both()
    observe_everything(both)
    ours, theirs = parse(generate_latest(both.tally)), parse(generate_latest(both.reference))
    assert ours.keys() == theirs.keys()
    for key, found in ours.items():
        expected = theirs[key]
        assert found == expected or (math.isnan(found) and math.isnan(expected)), key


def test_describe_names_the_families_collect_serves():
    families = TaskFamilies()
    families.of("x")
    described = [(m.name, m.type) for m in families.describe()]
    assert described == [(m.name, m.type) for m in families.collect()]


# -- InFlight ----------------------------------------------------------------------------


def gauge() -> tuple[Gauge, CollectorRegistry]:
    registry = CollectorRegistry()
    return Gauge("atp_worker_in_flight", "In flight.", ("worker",), registry=registry), registry


def in_flight(registry: CollectorRegistry, worker: str) -> float | None:
    return registry.get_sample_value("atp_worker_in_flight", {"worker": worker})


def call(task_id: str = "t1", worker: str = "w1") -> HandlerCall:
    async def handler() -> None:
        return None

    return HandlerCall(Task(id=task_id, subject="obs.ok"), handler, worker, 1.0)


async def test_in_flight_counts_each_attempt_while_it_runs():
    metric, registry = gauge()
    started: list[str] = []
    inner = InFlight(metric, lambda task: started.append(task.id))
    seen: list[float | None] = []

    async def nested(c: HandlerCall) -> JSON:
        seen.append(in_flight(registry, "w1"))
        return await inner.execute(call("t2"), running)

    async def running(c: HandlerCall) -> JSON:
        seen.append(in_flight(registry, "w1"))
        return "ran"

    assert await inner.execute(call("t1"), nested) == "ran"
    assert seen == [1.0, 2.0]
    assert started == ["t1", "t2"]
    assert in_flight(registry, "w1") == 0.0


async def test_in_flight_comes_down_when_the_attempt_raises():
    metric, registry = gauge()
    interceptor = InFlight(metric)

    async def failing(c: HandlerCall) -> JSON:
        raise RuntimeError("handler broke")

    with pytest.raises(RuntimeError, match="handler broke"):
        await interceptor.execute(call(), failing)
    assert in_flight(registry, "w1") == 0.0


async def test_workers_are_counted_apart_and_watched_before_their_first_attempt():
    metric, registry = gauge()
    running: dict[str, int] = {}
    InFlight(metric, running=running).watch("idle")
    assert in_flight(registry, "idle") == 0.0
    interceptor = InFlight(metric, running=running)

    async def look(c: HandlerCall) -> JSON:
        return [in_flight(registry, "idle"), in_flight(registry, "busy")]

    assert await interceptor.execute(call(worker="busy"), look) == [0.0, 1.0]


async def test_a_failing_started_callback_is_logged_and_the_attempt_runs(
    caplog: pytest.LogCaptureFixture,
):
    metric, registry = gauge()

    def broken(task: Task) -> None:
        raise ValueError("metrics broke")

    async def runs(c: HandlerCall) -> Any:
        return in_flight(registry, "w1")

    with caplog.at_level(logging.ERROR, logger="atp.plugins.prometheus"):
        assert await InFlight(metric, broken).execute(call("t9"), runs) == 1.0
    assert in_flight(registry, "w1") == 0.0
    (record,) = caplog.records
    assert "t9" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
