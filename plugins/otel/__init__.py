"""OpenTelemetry traces for atp: a producer span per task, a consumer span per attempt.

Enable it by naming it among the plugins (``plugins = ["atp.plugins.otel"]`` in
atp.toml, or ``ATP_PLUGINS``); it needs ``pip install 'atp[observability]'``. Export is
configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``...). See docs/monitoring.md and ADR 0016.
A collector that does not answer never holds atp up: a one-shot CLI command gives it half a
second, a long-running process five seconds at exit, and it is warned about once.
"""

from __future__ import annotations

try:
    import opentelemetry.sdk.trace  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        "atp.plugins.otel needs opentelemetry-sdk: pip install 'atp[observability]'"
    ) from exc

from atp.plugins.otel._plugin import OtelPlugin, TracingInterceptor, task_attributes
from atp.plugins.otel._setup import provider_from_env

__all__ = [
    "OtelPlugin",
    "TracingInterceptor",
    "default_plugin",
    "provider_from_env",
    "task_attributes",
]

default_plugin = OtelPlugin()
"""The process's plugin: its tracer is set up from ``OTEL_*`` at ``atp_configure``."""

# The hook implementations pluggy finds on this module: the default plugin's methods.
atp_configure = default_plugin.atp_configure
atp_task_headers = default_plugin.atp_task_headers
atp_interceptors = default_plugin.atp_interceptors
atp_workflow_run_started = default_plugin.atp_workflow_run_started
atp_workflow_step_finished = default_plugin.atp_workflow_step_finished
atp_workflow_run_finished = default_plugin.atp_workflow_run_finished
