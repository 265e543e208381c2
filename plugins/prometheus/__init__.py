"""Prometheus metrics for atp: counters, histograms and gauges fed by the hooks.

Enable it by naming it among the plugins (``plugins = ["atp.plugins.prometheus"]`` in
atp.toml, or ``ATP_PLUGINS``); it needs ``pip install 'atp[observability]'``. Workers and
schedulers then serve ``GET /metrics`` on ``[atp.prometheus] port`` (default 9464), and
``atp server`` mounts it at ``/metrics``. See docs/monitoring.md and ADR 0016.
"""

from __future__ import annotations

try:
    import prometheus_client  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        "atp.plugins.prometheus needs prometheus-client: pip install 'atp[observability]'"
    ) from exc

from atp.plugins.prometheus._config import PrometheusConfig
from atp.plugins.prometheus._http import MetricsApp, MetricsServer
from atp.plugins.prometheus._plugin import InFlight, PrometheusPlugin

__all__ = [
    "InFlight",
    "MetricsApp",
    "MetricsServer",
    "PrometheusConfig",
    "PrometheusPlugin",
    "default_plugin",
]

default_plugin = PrometheusPlugin()
"""The process's plugin, on prometheus_client's default registry (with process metrics)."""

# The hook implementations pluggy finds on this module: the default plugin's methods.
atp_configure = default_plugin.atp_configure
atp_platform_built = default_plugin.atp_platform_built
atp_http_mounts = default_plugin.atp_http_mounts
atp_interceptors = default_plugin.atp_interceptors
atp_worker_started = default_plugin.atp_worker_started
atp_worker_stopped = default_plugin.atp_worker_stopped
atp_scheduler_started = default_plugin.atp_scheduler_started
atp_scheduler_stopped = default_plugin.atp_scheduler_stopped
atp_leader_acquired = default_plugin.atp_leader_acquired
atp_leader_lost = default_plugin.atp_leader_lost
atp_task_enqueued = default_plugin.atp_task_enqueued
atp_task_dispatched = default_plugin.atp_task_dispatched
atp_task_succeeded = default_plugin.atp_task_succeeded
atp_task_failed = default_plugin.atp_task_failed
atp_task_dead = default_plugin.atp_task_dead
atp_task_cancelled = default_plugin.atp_task_cancelled
atp_task_recovered = default_plugin.atp_task_recovered
atp_cron_fired = default_plugin.atp_cron_fired
atp_workflow_run_started = default_plugin.atp_workflow_run_started
atp_workflow_run_finished = default_plugin.atp_workflow_run_finished
atp_breaker_changed = default_plugin.atp_breaker_changed
