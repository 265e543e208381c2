"""The Prometheus plugin: hook listeners and an interceptor feeding the metric families."""

from __future__ import annotations

import asyncio
import collections
import logging
import operator
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from atp.core.clock import SystemClock
from atp.core.errors import ConfigError
from atp.core.model import JSON, Task, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import hookimpl
from atp.core.ports import Clock
from atp.core.settings import Settings
from atp.core.worker.interceptors import CallNext, HandlerCall, Interceptor
from atp.plugins.prometheus._config import PrometheusConfig
from atp.plugins.prometheus._depth import Depth
from atp.plugins.prometheus._http import MetricsApp, MetricsServer
from atp.plugins.prometheus._metrics import Metrics, SubjectLabels, SubjectSeries

__all__ = ["InFlight", "PrometheusPlugin"]

log = logging.getLogger("atp.plugins.prometheus")

METRICS_PATH = "/metrics"
MAX_REMEMBERED = 10_000
"""Subjects whose series ``_series`` remembers; others (all ``_other``) are looked up."""


class InFlight:
    """Counts the attempts running in a worker, exactly: up before the call, down after.

    The gauge reads the count when scraped. ``started`` (the plugin's) is told of each
    attempt as it starts: this interceptor is where every attempt passes, so the
    ``atp_task_started`` hook (one more call per task) is not needed. A failure there is
    logged, never raised into the attempt.
    """

    def __init__(
        self,
        gauge: Gauge,
        started: Callable[[Task], None] | None = None,
        running: dict[str, int] | None = None,
    ) -> None:
        self._gauge = gauge
        self._started = started
        self._running: dict[str, int] = {} if running is None else running
        """Attempts running, by worker name; shared by the plugin's interceptors."""

    def watch(self, worker: str) -> None:
        """Serve ``worker``'s count (0 until its first attempt)."""
        running = self._running
        if worker not in running:
            running[worker] = 0
            self._gauge.labels(worker).set_function(lambda: running[worker])

    async def execute(self, call: HandlerCall, call_next: CallNext) -> JSON:
        worker, running = call.worker, self._running
        if worker not in running:
            self.watch(worker)
        running[worker] += 1
        if self._started is not None:
            try:
                self._started(call.task)
            except Exception:
                log.exception("recording the start of task %s failed", call.task.id)
        try:
            return await call_next(call)
        finally:
            running[worker] -= 1


class PrometheusPlugin:
    """Everything the plugin does, on one registry; the module registers one of these.

    Tests build their own on a fresh ``CollectorRegistry`` and register it directly.
    """

    def __init__(
        self, registry: CollectorRegistry = REGISTRY, config: PrometheusConfig | None = None
    ) -> None:
        self.registry = registry
        self.metrics = Metrics(registry)
        self.config = config or PrometheusConfig()
        self.labels = SubjectLabels(self.config.max_subjects)
        self.groups = SubjectLabels(self.config.max_subjects)
        """Worker group label values, bounded as subjects are."""
        self._subjects: dict[str, SubjectSeries] = {}
        """The series of each subject seen, through ``labels`` (bounded in ``_series``)."""
        self._running: dict[str, int] = {}
        store_errors = Counter(
            "atp_metrics_store_errors_total", "Depth readings that failed.", registry=registry
        )
        self.depth = Depth(self.config.depth_interval, self.labels, store_errors, self.groups)
        registry.register(self.depth)
        self.server: MetricsServer | None = None
        self._clock: Clock = SystemClock()
        self._roles: collections.Counter[str] = collections.Counter()
        self._jobs: set[asyncio.Task[None]] = set()

    # -- configuration and serving ---------------------------------------------------

    @hookimpl
    def atp_configure(self, settings: Settings) -> None:
        config = PrometheusConfig.from_settings(settings)
        self.config = config
        self.labels = SubjectLabels(config.max_subjects)
        self.groups = SubjectLabels(config.max_subjects)
        self._subjects = {}
        old = self.depth
        self.registry.unregister(old)
        self.depth = Depth(config.depth_interval, self.labels, old.errors, self.groups)
        self.depth.platform = old.platform
        self.registry.register(self.depth)

    @hookimpl
    def atp_platform_built(self, platform: Platform) -> None:
        self.depth.platform = platform
        self._clock = platform.clock

    @hookimpl
    def atp_http_mounts(self, settings: Settings) -> Sequence[tuple[str, object]]:
        self._roles["server"] += 1
        return [(METRICS_PATH, MetricsApp(self.registry, self.refresh, self.config.token))]

    @hookimpl
    def atp_interceptors(self, settings: Settings) -> Sequence[Interceptor]:
        return [InFlight(self.metrics.in_flight, self._started, self._running)]

    async def refresh(self) -> None:
        """Bring cached readings up to date before a scrape."""
        if self._wants_depth():
            await self.depth.refresh()

    def _wants_depth(self) -> bool:
        if self.config.depth != "auto":
            return self.config.depth == "on"
        return bool(self._roles["scheduler"] or self._roles["server"])

    def _serve(self, role: str) -> None:
        """Start this process's metrics port when its first worker or scheduler starts."""
        self._roles[role] += 1
        if self.config.port == 0 or self.server is not None:
            return
        config = self.config
        server = MetricsServer(self.registry, self.refresh, config.host, config.port, config.token)
        try:
            server.bind()
        except OSError as exc:
            raise ConfigError(
                f"metrics port {self.config.host}:{self.config.port} cannot be bound ({exc}); "
                "give each process on this host its own [atp.prometheus] port"
            ) from exc
        self.server = server
        self._spawn(server.start())
        log.info("metrics on http://%s:%d%s", self.config.host, server.port, METRICS_PATH)

    def _unserve(self, role: str) -> None:
        self._roles[role] -= 1
        if self.server is not None and not (self._roles["worker"] or self._roles["scheduler"]):
            server, self.server = self.server, None
            self._spawn(server.close())

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    # -- processes ---------------------------------------------------------------------

    @hookimpl
    def atp_worker_started(self, worker: str) -> None:
        InFlight(self.metrics.in_flight, running=self._running).watch(worker)
        self._serve("worker")

    @hookimpl
    def atp_worker_stopped(self, worker: str) -> None:
        self._unserve("worker")

    @hookimpl
    def atp_scheduler_started(self, scheduler: str) -> None:
        self.metrics.leader.labels("scheduler").set(0)
        self._serve("scheduler")

    @hookimpl
    def atp_scheduler_stopped(self, scheduler: str) -> None:
        self._unserve("scheduler")

    @hookimpl
    def atp_leader_acquired(self, role: str) -> None:
        self.metrics.leader.labels(role).set(1)

    @hookimpl
    def atp_leader_lost(self, role: str) -> None:
        self.metrics.leader.labels(role).set(0)

    # -- tasks ---------------------------------------------------------------------------

    @hookimpl
    def atp_task_enqueued(self, tasks: Sequence[Task]) -> None:
        for subject, count in _by_subject(tasks).items():
            self._series(subject).enqueued += count

    @hookimpl
    def atp_task_dispatched(self, tasks: Sequence[Task]) -> None:
        for subject, count in _by_subject(tasks).items():
            self._series(subject).dispatched += count

    def _started(self, task: Task) -> None:
        """An attempt of ``task`` starts (told by InFlight)."""
        series, now = self._series(task.subject), self._clock.now()
        series.started += 1
        series.queue_wait.observe(max(now - max(task.run_at, task.created_at), 0.0))
        kind = _lateness_kind(task)
        if kind is not None:
            series.lateness[kind].observe(max(now - task.run_at, 0.0))

    @hookimpl
    def atp_task_succeeded(self, record: TaskRecord, duration: float) -> None:
        series = self._series(record.task.subject)
        series.succeeded += 1
        series.ran_ok.observe(duration)

    @hookimpl
    def atp_task_failed(self, record: TaskRecord, will_retry: bool, duration: float) -> None:
        series = self._series(record.subject)
        series.failed += 1
        if will_retry:
            series.retried += 1
        series.ran_failed.observe(duration)

    @hookimpl
    def atp_task_dead(self, record: TaskRecord) -> None:
        self._series(record.subject).dead += 1

    @hookimpl
    def atp_task_cancelled(self, record: TaskRecord) -> None:
        self._series(record.subject).cancelled += 1

    @hookimpl
    def atp_task_recovered(self, records: Sequence[TaskRecord]) -> None:
        for subject, count in _by_subject(records).items():
            self._series(subject).recovered += count

    @hookimpl
    def atp_cron_fired(self, schedule: str, tick: float) -> None:
        self.metrics.cron_firings.labels(schedule).inc()
        self.metrics.cron_lateness.labels(schedule).observe(max(self._clock.now() - tick, 0.0))

    @hookimpl
    def atp_workflow_run_started(self, workflow: str) -> None:
        self.metrics.workflow_started.labels(workflow).inc()

    @hookimpl
    def atp_workflow_run_finished(self, workflow: str, state: str) -> None:
        self.metrics.workflow_runs.labels(workflow, state).inc()

    @hookimpl
    def atp_breaker_changed(
        self, group: str, subject: str, circuit: str, previous: str, at: float
    ) -> None:
        labels = (self.groups(group), self.labels(subject), circuit)
        self.metrics.breaker_transitions.labels(*labels).inc()

    def _series(self, subject: str) -> SubjectSeries:
        found = self._subjects.get(subject)
        if found is None:
            found = self.metrics.series(self.labels(subject))
            if len(self._subjects) < MAX_REMEMBERED:
                self._subjects[subject] = found
        return found


_SUBJECT = operator.attrgetter("subject")


def _by_subject(items: Sequence[Task] | Sequence[TaskRecord]) -> collections.Counter[str]:
    """How many of ``items`` have each subject (counted in C: these come by the thousand)."""
    return collections.Counter(map(_SUBJECT, items))


def _lateness_kind(task: Task) -> str | None:
    """Which schedule the start was late for: cron, a retry's backoff, or a delay."""
    if task.schedule is not None:
        return "cron"
    if task.attempt > 1:
        return "retry"
    if task.run_at > task.created_at:
        return "delayed"
    return None
