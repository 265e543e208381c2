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

__all__ = ["provider_from_env"]

log = logging.getLogger("atp.plugins.otel")

DEFAULT_SERVICE = "atp"


def provider_from_env(env: Mapping[str, str] | None = None) -> trace.TracerProvider:
    """The provider atp's spans go to.

    The global one if the process already set one (``opentelemetry-instrument``, or the
    app's own set-up); else a new SDK provider, made global so handler code's spans join
    atp's traces: resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
    (service ``atp`` by default), sampler from ``OTEL_TRACES_SAMPLER``, exporters from
    ``OTEL_TRACES_EXPORTER`` (``otlp`` by default, ``console``, ``none``), OTLP over
    ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (``http/protobuf`` by default, or ``grpc``)
    to ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``. ``OTEL_SDK_DISABLED=true``: no-op.
    """
    env = os.environ if env is None else env
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return trace.NoOpTracerProvider()
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporters.append(_otlp(env))
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; atp knows otlp, console, none"
            )
    return exporters


def _otlp(env: Mapping[str, str]) -> SpanExporter:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use grpc or http/protobuf"
    )
