"""The OpenTelemetry plugin on a TestPlatform, asserted with the SDK's in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from atp.core.context import current_task
from atp.core.errors import ConfigError, Retry
from atp.core.model import State
from atp.core.service import PublishRequest, TaskService
from atp.plugins.otel import OtelPlugin
from atp.plugins.otel._setup import provider_from_env
from atp.sdk import App
from atp.sdk.testing import TestPlatform

UPSTREAM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def plugin(exporter: InMemorySpanExporter) -> OtelPlugin:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelPlugin(provider)


def flaky_app() -> App:
    app = App("traced")

    @app.task("traced.flaky")
    async def flaky() -> str:
        if current_task().attempt == 1:
            raise Retry(delay=1.0, reason="not yet")
        return "done"

    @app.task("traced.step")
    async def step() -> None:
        return None

    return app


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.kind is kind), key=lambda s: s.start_time or 0)


async def test_every_attempt_is_a_consumer_span_in_the_producer_trace(exporter, plugin):
    async with TestPlatform(flaky_app(), plugins=[plugin]) as tp:
        published = await tp.client.publish("traced.flaky")
        record = await tp.wait(published.id)
    spans = exporter.get_finished_spans()
    (producer,) = by_kind(spans, SpanKind.PRODUCER)
    first, second = by_kind(spans, SpanKind.CONSUMER)
    assert producer.name == "create traced.flaky"
    assert producer.attributes["messaging.message.id"] == published.id
    header = record.task.headers["traceparent"]
    assert header.split("-")[1:3] == [
        f"{producer.context.trace_id:032x}",
        f"{producer.context.span_id:016x}",
    ]
    for attempt, span in enumerate((first, second), start=1):
        assert span.name == "process traced.flaky"
        assert span.context.trace_id == producer.context.trace_id
        assert span.parent is not None
        assert span.parent.span_id == producer.context.span_id
        assert [link.context.span_id for link in span.links] == [producer.context.span_id]
        assert span.attributes["atp.task.attempt"] == attempt
        assert span.attributes["messaging.destination.name"] == "traced.flaky"
        assert span.attributes["messaging.client.id"] == "test-worker-1"
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert second.status.status_code is StatusCode.UNSET


async def test_a_producers_own_traceparent_becomes_the_parent(exporter, plugin):
    upstream = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01"
    async with TestPlatform(flaky_app(), plugins=[plugin]) as tp:
        published = await tp.client.publish("traced.step", headers={"traceparent": upstream})
        record = await tp.wait(published.id)
    (producer,) = by_kind(exporter.get_finished_spans(), SpanKind.PRODUCER)
    assert f"{producer.context.trace_id:032x}" == UPSTREAM_TRACE
    assert producer.parent is not None
    assert f"{producer.parent.span_id:016x}" == UPSTREAM_SPAN
    assert record.task.headers["traceparent"] != upstream
    assert record.task.headers["traceparent"].split("-")[1] == UPSTREAM_TRACE


async def test_a_workflow_run_is_the_parent_of_its_steps(exporter, plugin):
    """The test plays the workflow engine through the hooks it fires, publishing step
    tasks with ``workflow_run`` set as the engine does."""
    async with TestPlatform(flaky_app(), plugins=[plugin]) as tp:
        emit = tp.platform.emit
        emit("atp_workflow_run_started", run_id="run-1", workflow="billing")
        requests = [
            PublishRequest("traced.step", workflow_run="run-1", step=name)
            for name in ("charge", "mail")
        ]
        for published in await TaskService(tp.platform).publish(requests):
            record = await tp.wait(published.id)
            assert record.state is State.SUCCEEDED
            emit(
                "atp_workflow_step_finished",
                run_id="run-1",
                step=record.task.step,
                state="SUCCEEDED",
            )
        emit("atp_workflow_run_finished", run_id="run-1", workflow="billing", state="SUCCEEDED")
    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.name == "workflow billing"]
    producers = by_kind(spans, SpanKind.PRODUCER)
    consumers = by_kind(spans, SpanKind.CONSUMER)
    assert run.parent is None
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}
    assert {p.parent.span_id for p in producers if p.parent} == {run.context.span_id}
    assert len(producers) == len(consumers) == 2
    assert {c.attributes["atp.workflow.step"] for c in consumers} == {"charge", "mail"}
    assert [e.attributes["atp.workflow.step"] for e in run.events] == ["charge", "mail"]


def test_unknown_exporters_and_protocols_are_refused():
    with pytest.raises(ConfigError, match="unknown exporter 'zipkin'"):
        provider_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ConfigError, match="'http/json' is not supported"):
        provider_from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
