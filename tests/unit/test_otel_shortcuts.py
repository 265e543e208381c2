"""The OpenTelemetry plugin's shortcuts answer as the SDK would.

``Handoff`` gives a consumer of this process the producer context ``parse`` would read
from the same headers; ``decision_rule`` gives the decision the sampler's own
``should_sample`` gives, or None where it cannot know it without asking.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import Attributes

from atp.core.model import Task
from atp.plugins.otel._spans import SdkSpans, context_of, decision_rule
from atp.plugins.otel._w3c import Handoff, headers_of, parse

RANDOM = random.Random(22)
TRACE_IDS = [RANDOM.getrandbits(128) or 1 for _ in range(2000)]


def context(
    trace_id: int = 0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id: int = 0xF067AA0BA902B7,
    sampled: bool = True,
    remote: bool = False,
) -> SpanContext:
    return SpanContext(trace_id, span_id, remote, TraceFlags(TraceFlags.SAMPLED * sampled))


# -- Handoff -----------------------------------------------------------------------------


@pytest.mark.parametrize("sampled", [True, False])
def test_a_handed_off_context_is_what_parsing_the_headers_gives(sampled: bool):
    handoff = Handoff()
    produced = context(sampled=sampled)
    headers = headers_of(produced)
    handoff.put(headers["traceparent"], produced)
    taken = handoff.take(headers)
    assert taken is not None
    assert taken == parse(headers)
    assert taken.is_remote
    assert taken.trace_flags.sampled is sampled
    assert not taken.trace_state


def test_a_context_is_taken_once_then_headers_are_parsed():
    handoff = Handoff()
    produced = context()
    headers = headers_of(produced)
    handoff.put(headers["traceparent"], produced)
    assert handoff.take(headers) is not None
    assert handoff.take(headers) is None  # a retry parses its headers


def test_headers_this_process_did_not_write_miss():
    handoff = Handoff()
    produced = context()
    handoff.put(headers_of(produced)["traceparent"], produced)
    assert handoff.take(headers_of(context(span_id=5))) is None
    assert handoff.take({}) is None
    assert handoff.take({"other": "1"}) is None


def test_a_changed_traceparent_misses():
    handoff = Handoff()
    produced = context(sampled=True)
    handoff.put(headers_of(produced)["traceparent"], produced)
    assert handoff.take(headers_of(context(sampled=False))) is None


def test_a_full_handoff_drops_everything_it_kept():
    handoff = Handoff(size=2)
    first, second, third = (context(span_id=n) for n in (1, 2, 3))
    for produced in (first, second, third):
        handoff.put(headers_of(produced)["traceparent"], produced)
    assert handoff.take(headers_of(first)) is None
    assert handoff.take(headers_of(second)) is None
    assert handoff.take(headers_of(third)) == parse(headers_of(third))


def test_headers_with_a_tracestate_are_parsed_and_leave_the_entry_alone():
    handoff = Handoff()
    produced = context()
    headers = headers_of(produced)
    handoff.put(headers["traceparent"], produced)
    assert handoff.take({**headers, "tracestate": "vendor=1"}) is None
    assert handoff.take(headers) == parse(headers)


# -- decision_rule -----------------------------------------------------------------------


def asked(sampler: Sampler, parent: SpanContext, trace_id: int) -> Decision:
    result = sampler.should_sample(
        context_of(None, parent), trace_id, "create x", SpanKind.PRODUCER, {"a": 1}, ()
    )
    return result.decision


PARENTS = {
    "root": INVALID_SPAN_CONTEXT,
    "remote sampled": context(remote=True, sampled=True),
    "remote unsampled": context(remote=True, sampled=False),
    "local sampled": context(remote=False, sampled=True),
    "local unsampled": context(remote=False, sampled=False),
}


def same_decisions(sampler: Sampler, parents: Sequence[str]) -> set[Decision]:
    """Asserts the rule answers, as the sampler does, for every trace id and parent."""
    rule = decision_rule(sampler)
    assert rule is not None
    seen: set[Decision] = set()
    for name in parents:
        parent = PARENTS[name]
        for trace_id in TRACE_IDS:
            trace_id = parent.trace_id if parent.is_valid else trace_id
            decision = rule(parent, trace_id)
            assert decision is asked(sampler, parent, trace_id), (name, hex(trace_id))
            seen.add(decision)
    return seen


@pytest.mark.parametrize("sampler", [ALWAYS_ON, ALWAYS_OFF], ids=["on", "off"])
def test_static_samplers_are_known(sampler: Sampler):
    assert len(same_decisions(sampler, list(PARENTS))) == 1


def test_a_trace_id_ratio_is_known_for_every_trace_id():
    rule = decision_rule(TraceIdRatioBased(0.3))
    assert rule is not None
    decisions = [rule(INVALID_SPAN_CONTEXT, trace_id) for trace_id in TRACE_IDS]
    for trace_id, decision in zip(TRACE_IDS, decisions, strict=True):
        assert decision is asked(TraceIdRatioBased(0.3), INVALID_SPAN_CONTEXT, trace_id)
    assert 0.25 < decisions.count(Decision.RECORD_AND_SAMPLE) / len(decisions) < 0.35
    # It ignores the parent, as the sampler does.
    assert same_decisions(TraceIdRatioBased(0.3), ["remote unsampled", "local sampled"])


@pytest.mark.parametrize(
    "root", [ALWAYS_ON, ALWAYS_OFF, TraceIdRatioBased(0.3)], ids=["on", "off", "ratio"]
)
def test_parent_based_follows_parents_and_its_root(root: Sampler):
    assert same_decisions(ParentBased(root), list(PARENTS)) >= (
        {Decision.DROP, Decision.RECORD_AND_SAMPLE}
    )


def test_parent_based_trace_id_ratio_is_known():
    same_decisions(ParentBasedTraceIdRatio(0.3), list(PARENTS))


class Custom(Sampler):
    """Samples spans whose name is short: only asking it tells."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: object = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE if len(name) < 5 else Decision.DROP)

    def get_description(self) -> str:
        return "Custom"


class PickyRatio(TraceIdRatioBased):
    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        return SamplingResult(Decision.DROP)


@pytest.mark.parametrize(
    "sampler",
    [
        Custom(),
        PickyRatio(0.5),
        ParentBased(ALWAYS_ON, remote_parent_sampled=Custom()),
        ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON),
    ],
    ids=["custom", "overridden ratio", "custom remote", "remote unsampled kept"],
)
def test_a_sampler_it_cannot_know_is_asked(sampler: Sampler):
    assert decision_rule(sampler) is None


def test_parent_based_asks_a_custom_root_for_roots_only():
    rule = decision_rule(ParentBased(Custom()))
    assert rule is not None
    assert rule(INVALID_SPAN_CONTEXT, TRACE_IDS[0]) is None
    for name in ("remote sampled", "remote unsampled", "local sampled", "local unsampled"):
        assert rule(PARENTS[name], 1) is asked(ParentBased(Custom()), PARENTS[name], 1)


def test_parent_based_asks_custom_local_delegates_for_local_parents_only():
    sampler = ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON)
    rule = decision_rule(sampler)
    assert rule is not None
    assert rule(PARENTS["local sampled"], 1) is None
    assert rule(PARENTS["local unsampled"], 1) is None
    for name in ("root", "remote sampled", "remote unsampled"):
        parent = PARENTS[name]
        assert rule(parent, TRACE_IDS[0]) is asked(sampler, parent, TRACE_IDS[0])


# -- the span contexts SdkSpans makes ----------------------------------------------------


@pytest.mark.parametrize(
    "sampler",
    [ALWAYS_ON, ALWAYS_OFF, ParentBased(ALWAYS_ON), ParentBasedTraceIdRatio(0.5), Custom()],
    ids=["on", "off", "parent on", "parent ratio", "custom"],
)
@pytest.mark.parametrize(
    "parent",
    [
        INVALID_SPAN_CONTEXT,
        context(remote=True, sampled=True),
        context(remote=True, sampled=False),
        SpanContext(
            7,
            9,
            True,
            TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
            TraceState([("vendor", "1")]),
        ),
        context(remote=False, sampled=False),
    ],
    ids=["root", "sampled", "unsampled", "random with state", "local unsampled"],
)
def test_span_contexts_are_flagged_as_start_span_flags_them(sampler: Sampler, parent: SpanContext):
    provider = TracerProvider(sampler=sampler)
    tracer = provider.get_tracer("t")
    sdk = SdkSpans(tracer)  # type: ignore[arg-type]
    task = Task(id="t1", subject="x.y", attempt=1)
    for _ in range(20):
        ours = [
            sdk.produce("create x.y", None, parent, task),
            sdk.consume("process x.y", None, parent, task, "w").get_span_context(),
        ]
        theirs = tracer.start_span("create x.y", context_of(None, parent)).get_span_context()
        for found in ours:
            assert found.is_valid
            assert not found.is_remote
            assert found.trace_state == theirs.trace_state
            if parent.is_valid:
                assert (found.trace_id, found.trace_flags) == (theirs.trace_id, theirs.trace_flags)
            elif sampler is ALWAYS_ON or sampler is ALWAYS_OFF:
                assert found.trace_flags == theirs.trace_flags
            else:  # a root's sampled flag depends on its (random) trace id
                assert found.trace_flags.random_trace_id == theirs.trace_flags.random_trace_id


def test_ended_spans_reach_every_processor_added_since_the_last_look():
    provider = TracerProvider()
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(first))
    sdk = SdkSpans(provider.get_tracer("t"))  # type: ignore[arg-type]
    task = Task(id="t1", subject="x.y", attempt=1)
    assert sdk.usable()
    producer = sdk.produce("create x.y", None, INVALID_SPAN_CONTEXT, task)
    provider.add_span_processor(SimpleSpanProcessor(second))
    assert sdk.usable()
    sdk.consume("process x.y", None, producer, task, "w").end()
    assert [s.name for s in first.get_finished_spans()] == ["create x.y", "process x.y"]
    assert [s.name for s in second.get_finished_spans()] == ["process x.y"]
