"""A TracerProvider from the standard ``OTEL_*`` environment variables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from atp.core.errors import ConfigError
from atp.plugins.otel._export import (
    LONG_RUNNING,
    BoundedBatchSpanProcessor,
    Budget,
    collector_endpoint,
    install_warnings,
)

__all__ = ["provider_from_env", "sdk_provider"]

log = logging.getLogger("atp.plugins.otel")

DEFAULT_SERVICE = "atp"


def provider_from_env(
    env: Mapping[str, str] | None = None, budget: Budget = LONG_RUNNING
) -> trace.TracerProvider:
    """The provider atp's spans go to.

    The global one if the process already set one (``opentelemetry-instrument``, or the
    app's own set-up); else a new SDK provider, made global so handler code's spans join
    atp's traces: resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
    (service ``atp`` by default), sampler from ``OTEL_TRACES_SAMPLER``, exporters from
    ``OTEL_TRACES_EXPORTER`` (``otlp`` by default, ``console``, ``none``), OTLP over
    ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (``http/protobuf`` by default, or ``grpc``)
    to ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``. ``OTEL_SDK_DISABLED=true``: no-op.

    ``budget`` bounds each OTLP export and the flush at exit, and how often an
    unreachable collector is warned about (see ``_export``).
    """
    env = os.environ if env is None else env
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return trace.NoOpTracerProvider()
    trace.set_tracer_provider(sdk_provider(env, budget))
    return trace.get_tracer_provider()


def sdk_provider(env: Mapping[str, str], budget: Budget = LONG_RUNNING) -> TracerProvider:
    """A new SDK provider from ``env``, not made global (``provider_from_env`` does that)."""
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in _exporters(env, budget):
        provider.add_span_processor(_processor(exporter, budget))
    return provider


def _processor(exporter: SpanExporter, budget: Budget) -> BatchSpanProcessor:
    """The batch processor, its exit bounded; the console one is left to print all."""
    if isinstance(exporter, ConsoleSpanExporter):
        return BatchSpanProcessor(exporter)
    return BoundedBatchSpanProcessor(exporter, budget.exit_timeout)


def _exporters(env: Mapping[str, str], budget: Budget) -> list[SpanExporter]:
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporters.append(_otlp(env, budget))
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; atp knows otlp, console, none"
            )
    return exporters


def _otlp(env: Mapping[str, str], budget: Budget) -> SpanExporter:
    """The OTLP exporter, its export bounded by ``budget``, its failures warned once."""
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    exporter = _otlp_exporter(protocol, budget.export_timeout)
    install_warnings(collector_endpoint(env, protocol), budget.reminder)
    return exporter


def _otlp_exporter(protocol: str, timeout: float | None) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(timeout=timeout)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(timeout=timeout)
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use grpc or http/protobuf"
    )
