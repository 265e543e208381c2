"""The OpenTelemetry plugin's cheap paths give the spans the SDK's own path gives.

Spans recorded straight into the span processor and headers formatted without the
propagator are compared with the API path (forced by a processor that acts at start),
with the SDK's TraceContext propagator, and checked against what handler code and a
configured sampler or propagator expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from atp.core.context import current_task
from atp.core.errors import Retry
from atp.plugins.otel import OtelPlugin
from atp.plugins.otel._w3c import headers_of, parse
from atp.sdk import App
from atp.sdk.testing import TestPlatform


class StartCounting(SpanProcessor):
    """Acts at span start, so the plugin must take the API path to call it."""

    def __init__(self) -> None:
        self.started = 0

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started += 1


def traced(
    sampler: Sampler | None = None, limits: SpanLimits | None = None, at_start: bool = False
) -> tuple[OtelPlugin, InMemorySpanExporter, TracerProvider]:
    provider = TracerProvider(sampler=sampler, span_limits=limits)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if at_start:
        provider.add_span_processor(StartCounting())
    return OtelPlugin(provider), exporter, provider


def annotating_app(provider: TracerProvider) -> App:
    app = App("spans")
    tracer = provider.get_tracer("handler")

    @app.task("spans.flaky")
    async def flaky() -> str:
        span = trace.get_current_span()
        span.set_attribute("order.id", 7)
        span.add_event("charged", {"amount": 3})
        with tracer.start_as_current_span("inner"):
            pass
        if current_task().attempt == 1:
            raise Retry(delay=1.0, reason="not yet")
        return "done"

    @app.task("spans.seen")
    async def seen() -> dict[str, Any]:
        context = trace.get_current_span().get_span_context()
        with tracer.start_as_current_span("inner"):
            pass
        return {
            "trace": f"{context.trace_id:032x}",
            "sampled": context.trace_flags.sampled,
            "tenant": baggage.get_baggage("tenant"),
        }

    return app


def shape(spans: tuple[ReadableSpan, ...]) -> list[tuple[Any, ...]]:
    """What an exporter sees, with ids replaced by who is whose parent and link."""
    names = {span.context.span_id: span.name for span in spans if span.context}
    return sorted(
        (
            span.name,
            span.kind,
            names.get(span.parent.span_id) if span.parent else None,
            span.parent.is_remote if span.parent else None,
            tuple(names.get(link.context.span_id) for link in span.links),
            tuple(
                sorted(
                    (k, v)
                    for k, v in (span.attributes or {}).items()
                    if k != "messaging.message.id"
                )
            ),
            span.status.status_code,
            span.status.description,
            tuple((e.name, tuple(sorted(e.attributes or {}))) for e in span.events),
            tuple(sorted(span.resource.attributes.items())),
            span.instrumentation_scope.name if span.instrumentation_scope else None,
        )
        for span in spans
    )


async def run_flaky(plugin: OtelPlugin, provider: TracerProvider) -> None:
    async with TestPlatform(annotating_app(provider), plugins=[plugin]) as tp:
        published = await tp.client.publish("spans.flaky")
        await tp.wait(published.id)


async def test_the_cheap_path_exports_what_the_api_path_exports():
    fast, fast_spans, fast_provider = traced()
    slow, slow_spans, slow_provider = traced(at_start=True)
    assert fast.recorder.spans() is fast.recorder.sdk
    assert slow.recorder.spans() is slow.recorder.api
    await run_flaky(fast, fast_provider)
    await run_flaky(slow, slow_provider)
    assert shape(fast_spans.get_finished_spans()) == shape(slow_spans.get_finished_spans())
    assert slow_provider._active_span_processor._span_processors[1].started == 5  # type: ignore[attr-defined]


async def test_handler_code_annotates_the_consumer_span_and_nests_under_it():
    plugin, exporter, provider = traced()
    await run_flaky(plugin, provider)
    spans = exporter.get_finished_spans()
    first, second = sorted(
        (s for s in spans if s.kind is SpanKind.CONSUMER), key=lambda s: s.start_time or 0
    )
    inner = [s for s in spans if s.name == "inner"]
    assert {s.parent.span_id for s in inner if s.parent} == {
        first.context.span_id,
        second.context.span_id,
    }
    assert first.attributes["order.id"] == 7
    assert [e.name for e in first.events] == ["charged", "exception"]
    assert first.events[1].attributes["exception.type"] == "atp.core.errors.Retry"
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "Retry: not yet"
    assert [e.name for e in second.events] == ["charged"]


async def test_a_trace_the_producer_did_not_sample_is_followed_and_not_recorded():
    plugin, exporter, provider = traced(sampler=ParentBased(ALWAYS_OFF))
    async with TestPlatform(annotating_app(provider), plugins=[plugin]) as tp:
        published = await tp.client.publish("spans.seen")
        record = await tp.wait(published.id)
    header = record.task.headers["traceparent"]
    assert not int(header.split("-")[3], 16) & trace.TraceFlags.SAMPLED
    assert record.result == {"trace": header.split("-")[1], "sampled": False, "tenant": None}
    assert exporter.get_finished_spans() == ()


class Custom(TextMapPropagator):
    """Not W3C: ``x-trace: <trace>:<span>:<flags>``."""

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] | None = None,
    ) -> None:
        span = trace.get_current_span(context).get_span_context()
        if span.is_valid:
            carrier["x-trace"] = f"{span.trace_id:x}:{span.span_id:x}:{span.trace_flags:x}"  # type: ignore[index]

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] | None = None,
    ) -> Context:
        value = carrier.get("x-trace")  # type: ignore[attr-defined]
        if not value:
            return context or Context()
        trace_id, span_id, flags = (int(part, 16) for part in value.split(":"))
        remote = trace.SpanContext(trace_id, span_id, True, trace.TraceFlags(flags))
        return trace.set_span_in_context(trace.NonRecordingSpan(remote), context)

    @property
    def fields(self) -> set[str]:
        return {"x-trace"}


@pytest.fixture
def custom_propagator() -> Iterator[None]:
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(Custom())
    yield
    propagate.set_global_textmap(before)


@pytest.mark.usefixtures("custom_propagator")
async def test_a_configured_propagator_is_used_as_it_is():
    plugin, exporter, provider = traced()
    async with TestPlatform(annotating_app(provider), plugins=[plugin]) as tp:
        published = await tp.client.publish("spans.seen")
        record = await tp.wait(published.id)
    assert "traceparent" not in record.task.headers
    spans = exporter.get_finished_spans()
    (producer,) = [s for s in spans if s.kind is SpanKind.PRODUCER]
    (consumer,) = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert record.task.headers["x-trace"].split(":")[1] == f"{producer.context.span_id:x}"
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]


async def test_baggage_travels_through_the_propagator():
    plugin, exporter, provider = traced()
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        async with TestPlatform(annotating_app(provider), plugins=[plugin]) as tp:
            published = await tp.client.publish("spans.seen")
            record = await tp.wait(published.id)
    finally:
        otel_context.detach(token)
    assert record.task.headers["baggage"] == "tenant=acme"
    assert record.result["tenant"] == "acme"
    (producer,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert record.result["trace"] == f"{producer.context.trace_id:032x}"


async def test_span_limits_atp_cannot_honour_cheaply_take_the_api_path():
    plugin, exporter, provider = traced(limits=SpanLimits(max_span_attribute_length=4))
    assert plugin.recorder.sdk is None
    async with TestPlatform(annotating_app(provider), plugins=[plugin]) as tp:
        await tp.wait((await tp.client.publish("spans.seen")).id)
    (producer,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert producer.attributes["messaging.destination.name"] == "span"


W3C = TraceContextTextMapPropagator()
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": f"00-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{SPAN}-00", "tracestate": "vendor=1,other=two"},
        {"traceparent": f" 00-{TRACE}-{SPAN}-03 "},
        {"traceparent": f"01-{TRACE}-{SPAN}-01-future"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01-extra"},
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
        {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},
        {"traceparent": "garbage"},
        {"other": "1"},
    ],
)
def test_traceparent_is_read_as_the_sdk_propagator_reads_it(headers: dict[str, str]):
    expected = trace.get_current_span(W3C.extract(headers)).get_span_context()
    found = parse(headers)
    if not expected.is_valid:
        assert found is None
        return
    assert found == expected
    assert found.trace_state == expected.trace_state
    assert headers_of(found) == _injected(found)


def _injected(context: trace.SpanContext) -> dict[str, str]:
    carrier: dict[str, str] = {}
    W3C.inject(carrier, trace.set_span_in_context(trace.NonRecordingSpan(context)))
    return carrier
