"""Recording atp's spans: straight into an SDK tracer's span processor, or through the API.

``tracer.start_span`` builds a mutable SDK ``Span`` (a lock, bounded containers, every
attribute value cleaned), calls each processor's ``on_start``, then copies it into a
``ReadableSpan`` at ``end``: about 15 µs for a span whose content atp knows when it starts.
When nothing can tell the difference, ``SdkSpans`` makes the same decisions with the
tracer's own sampler and id generator, builds the ``ReadableSpan`` itself (for a consumer
span, an ``AttemptSpan``, which is one) and hands it to the tracer's span processor: the
exporter receives the same span. "Nothing can tell" means: an SDK tracer that is enabled,
span processors that do nothing at start (the SDK's batch and simple processors, or any
that does not override ``on_start``), span limits atp's own attributes fit in, and the
SDK's internal span metrics off. Anything else goes through ``ApiSpans``, the public API.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from time import time_ns
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, Sampler
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.util import types

from atp.plugins.otel._attempt import READABLE_FIELDS, AttemptSpan

__all__ = ["EMPTY", "ApiSpans", "Recorder", "SdkSpans", "Spans", "context_of"]

EMPTY = Context()
INTERNAL_METRICS = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
MOST_ATTRIBUTES = 16
"""More than atp puts on a span; smaller span limits take the API path."""
_QUIET_HOOKS = {hook: {getattr(cls, hook, None) for cls in (sdk_trace.SpanProcessor,
                         BatchSpanProcessor, SimpleSpanProcessor)}
                for hook in ("on_start", "_on_ending")}  # fmt: skip
"""The start hooks that do nothing: the base class's and the SDK's batch and simple ones."""
# TraceFlags by (sampled, random trace id), as the SDK's tracer sets them.
_FLAGS = {(s, r): TraceFlags(s * TraceFlags.SAMPLED | r * TraceFlags.RANDOM_TRACE_ID)
          for s in (False, True) for r in (False, True)}  # fmt: skip


class Spans(Protocol):
    """How the plugin records spans. ``parent_span`` is the parent's span context and
    ``parent`` its whole Context, or None when that would hold nothing else."""

    def produce(
        self, name: str, parent: Context | None, parent_span: SpanContext,
        attributes: dict[str, Any],
    ) -> SpanContext:  # fmt: skip
        """Record a PRODUCER span that starts and ends now; return its context."""
        ...

    def consume(
        self, name: str, parent: Context | None, parent_span: SpanContext,
        attributes: dict[str, Any], links: Sequence[Link],
    ) -> trace.Span:  # fmt: skip
        """Start a CONSUMER span; the caller ends it."""
        ...


def context_of(parent: Context | None, parent_span: SpanContext) -> Context:
    """``parent``, or a Context holding only ``parent_span``."""
    if parent is not None:
        return parent
    if not parent_span.is_valid:
        return EMPTY
    return trace.set_span_in_context(trace.NonRecordingSpan(parent_span), EMPTY)


class ApiSpans:
    """Spans through ``tracer.start_span``: any provider, any processor."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def produce(
        self, name: str, parent: Context | None, parent_span: SpanContext,
        attributes: dict[str, Any],
    ) -> SpanContext:  # fmt: skip
        span = self._tracer.start_span(name, context=context_of(parent, parent_span),
                                       kind=SpanKind.PRODUCER, attributes=attributes)  # fmt: skip
        span.end()
        return span.get_span_context()

    def consume(
        self, name: str, parent: Context | None, parent_span: SpanContext,
        attributes: dict[str, Any], links: Sequence[Link],
    ) -> trace.Span:  # fmt: skip
        return self._tracer.start_span(name, context=context_of(parent, parent_span),
                                       kind=SpanKind.CONSUMER, attributes=attributes,
                                       links=links)  # fmt: skip


class SdkSpans:
    """Spans handed straight to an SDK tracer's span processor (see the module docstring).

    The sampling decision is the sampler's: asked as ``start_span`` asks it, except where
    its answer is known without asking. ``ALWAYS_ON`` and ``ALWAYS_OFF`` always answer the
    same; a ``ParentBased`` sampler with its default delegates follows a remote parent's
    sampled flag (so the consumer of a trace the producer did not sample costs a parse,
    two ids and a non-recording span), and answers for a root span as its root sampler.
    """

    def __init__(self, tracer: sdk_trace.Tracer) -> None:
        self._tracer = tracer
        self._limits: SpanLimits = tracer._span_limits
        self._scope = tracer._instrumentation_scope
        self._random_ids = tracer.id_generator.is_trace_id_random()
        sampler = tracer.sampler
        self._always = _fixed_decision(sampler)
        self._parent_based = _default_parent_based(sampler)
        self._root = _fixed_decision(sampler._root) if self._parent_based else None  # type: ignore[attr-defined]
        self._processors: object = None
        self._quiet = False

    @classmethod
    def supports(cls, tracer: trace.Tracer) -> bool:
        """Whether ``tracer`` is an SDK tracer whose spans this class can record."""
        if not isinstance(tracer, sdk_trace.Tracer) or _env_true(INTERNAL_METRICS):
            return False
        needed = ("_span_limits", "_instrumentation_scope", "_is_enabled")
        if not all(hasattr(tracer, name) for name in needed):
            return False
        if not hasattr(tracer.span_processor, "_span_processors"):
            return False
        fields = vars(ReadableSpan("probe")).keys()
        return fields >= READABLE_FIELDS and _limits_fit(tracer._span_limits)

    def usable(self) -> bool:
        """Checked per batch and per attempt: the tracer is enabled and, if processors were
        added since the last look, they all do nothing at start."""
        processors = self._tracer.span_processor._span_processors
        if processors is not self._processors:
            self._processors, self._quiet = processors, all(map(_quiet, processors))
        return self._quiet and self._tracer._is_enabled()

    def produce(
        self, name: str, parent: Context | None, parent_span: SpanContext,
        attributes: dict[str, Any],
    ) -> SpanContext:  # fmt: skip
        context, kept, recording = self._sample(name, parent, parent_span, SpanKind.PRODUCER,
                                                attributes, ())  # fmt: skip
        if recording:
            tracer, now = self._tracer, time_ns()
            tracer.span_processor.on_end(ReadableSpan(
                name=name, context=context, parent=_parent_of(parent_span),
                resource=tracer.resource, attributes=kept, kind=SpanKind.PRODUCER,
                instrumentation_info=tracer.instrumentation_info, start_time=now, end_time=now,
                instrumentation_scope=self._scope,
            ))  # fmt: skip
        return context

    def consume(
        self, name: str, parent: Context | None, parent_span: SpanContext,
        attributes: dict[str, Any], links: Sequence[Link],
    ) -> trace.Span:  # fmt: skip
        context, kept, recording = self._sample(name, parent, parent_span, SpanKind.CONSUMER,
                                                attributes, links)  # fmt: skip
        if not recording:
            return trace.NonRecordingSpan(context)
        tracer = self._tracer
        return AttemptSpan(tracer.span_processor, self._limits, name, context,
                           _parent_of(parent_span), tracer.resource, kept, links,
                           tracer.instrumentation_info, self._scope)  # fmt: skip

    def _sample(
        self, name: str, parent: Context | None, parent_span: SpanContext, kind: SpanKind,
        attributes: dict[str, Any], links: Sequence[Link],
    ) -> tuple[SpanContext, types.Attributes, bool]:  # fmt: skip
        """The new span's context, its attributes and whether it records, decided as
        ``Tracer.start_span`` decides them."""
        ids = self._tracer.id_generator
        if parent_span.is_valid:
            trace_id, random = parent_span.trace_id, parent_span.trace_flags.random_trace_id
        else:
            trace_id, random = ids.generate_trace_id(), self._random_ids
        decision = self._known_decision(parent_span)
        if decision is None:
            asked = context_of(parent, parent_span)
            decision, state, kept = self._ask(asked, trace_id, name, kind, attributes, links)
        else:
            kept = attributes
            state = parent_span.trace_state if parent_span.is_valid else None
        flags = _FLAGS[decision is Decision.RECORD_AND_SAMPLE, random]
        context = SpanContext(trace_id, ids.generate_span_id(), False, flags, state)
        return context, kept, decision is not Decision.DROP

    def _ask(
        self, parent: Context, trace_id: int, name: str, kind: SpanKind,
        attributes: dict[str, Any], links: Sequence[Link],
    ) -> tuple[Decision, TraceState | None, types.Attributes]:  # fmt: skip
        """The sampler's decision, trace state and attributes (cleaned if it added some)."""
        result = self._tracer.sampler.should_sample(parent, trace_id, name, kind, attributes,
                                                    links)  # fmt: skip
        kept: types.Attributes = result.attributes
        if kept is not None and len(kept) != len(attributes):
            limits = self._limits
            kept = BoundedAttributes(limits.max_span_attributes, kept, immutable=False,
                                     max_value_len=limits.max_span_attribute_length)  # fmt: skip
        return result.decision, result.trace_state, kept

    def _known_decision(self, parent_span: SpanContext) -> Decision | None:
        """The decision where the sampler's answer is known without asking it."""
        if self._always is not None:
            return self._always
        if self._parent_based:
            if parent_span.is_remote:
                sampled = parent_span.trace_flags.sampled
                return Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP
            if not parent_span.is_valid:
                return self._root
        return None


class Recorder:
    """Picks the span path per call: ``SdkSpans`` while it may be used, else ``ApiSpans``."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.api = ApiSpans(tracer)
        self.sdk = SdkSpans(tracer) if SdkSpans.supports(tracer) else None  # type: ignore[arg-type]

    def spans(self) -> Spans:
        sdk = self.sdk
        return sdk if sdk is not None and sdk.usable() else self.api


def _fixed_decision(sampler: Sampler) -> Decision | None:
    if sampler is ALWAYS_ON:
        return Decision.RECORD_AND_SAMPLE
    if sampler is ALWAYS_OFF:
        return Decision.DROP
    return None


def _default_parent_based(sampler: Sampler) -> bool:
    """A ParentBased sampler whose remote-parent delegates are the defaults: a remote
    parent's sampled flag decides, and a root span is its root sampler's."""
    return (
        isinstance(sampler, ParentBased)
        and type(sampler).should_sample is ParentBased.should_sample
        and getattr(sampler, "_remote_parent_sampled", None) is ALWAYS_ON
        and getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
        and hasattr(sampler, "_root")
    )


def _parent_of(parent_span: SpanContext) -> SpanContext | None:
    return parent_span if parent_span.is_valid else None


def _quiet(processor: object) -> bool:
    cls = type(processor)
    return all(getattr(cls, hook, None) in quiet for hook, quiet in _QUIET_HOOKS.items())


def _limits_fit(limits: SpanLimits) -> bool:
    most, links = limits.max_span_attributes, limits.max_links
    return (
        (most is None or most >= MOST_ATTRIBUTES)
        and (links is None or links >= 1)
        and (limits.max_span_attribute_length is None)
    )


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"
