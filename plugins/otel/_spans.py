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
from collections.abc import Callable, Sequence
from random import getrandbits
from time import time_ns
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from atp.core.model import Task
from atp.plugins.otel._attempt import READABLE_FIELDS, AttemptSpan, make_span, span_class
from atp.plugins.otel._attributes import links_to, task_attributes

__all__ = ["EMPTY", "ApiSpans", "Recorder", "SdkSpans", "Spans", "context_of", "decision_rule"]

EMPTY = Context()
INTERNAL_METRICS = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
MOST_ATTRIBUTES = 16
"""More than atp puts on a span; smaller span limits take the API path."""
_QUIET_HOOKS = {
    hook: {
        getattr(cls, hook, None)
        for cls in (sdk_trace.SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
    }
    for hook in ("on_start", "_on_ending")
}
"""The start hooks that do nothing: the base class's and the SDK's batch and simple ones."""
CREATE, PROCESS = "create", "process"
"""The messaging operation types of the producer and consumer spans."""
SAMPLE, DROP = Decision.RECORD_AND_SAMPLE, Decision.DROP
Rule = Callable[[SpanContext, int], Decision | None]
RANDOM = TraceFlags.RANDOM_TRACE_ID
_FLAGS = [TraceFlags(bits) for bits in range((RANDOM | TraceFlags.SAMPLED) + 1)]
"""TraceFlags by their value: a sampled bit and a random-trace-id bit."""


class Spans(Protocol):
    """How the plugin records spans. ``parent_span`` is the parent's span context and
    ``parent`` its whole Context, or None when that would hold nothing else. Attributes
    and links come from the task (``task_attributes``, ``links_to``), built only for a
    span that records or a sampler that must be asked."""

    def produce(
        self, name: str, parent: Context | None, parent_span: SpanContext, task: Task
    ) -> SpanContext:
        """Record the PRODUCER span of ``task`` that starts and ends now; its context."""
        ...

    def consume(
        self,
        name: str,
        parent: Context | None,
        parent_span: SpanContext,
        task: Task,
        worker: str,
    ) -> trace.Span:
        """Start the CONSUMER span of an attempt of ``task``, linked to ``parent_span``
        (its producer); the caller ends it."""
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
        self, name: str, parent: Context | None, parent_span: SpanContext, task: Task
    ) -> SpanContext:
        span = self._tracer.start_span(
            name,
            context=context_of(parent, parent_span),
            kind=SpanKind.PRODUCER,
            attributes=task_attributes(task, CREATE),
        )
        span.end()
        return span.get_span_context()

    def consume(
        self,
        name: str,
        parent: Context | None,
        parent_span: SpanContext,
        task: Task,
        worker: str,
    ) -> trace.Span:
        return self._tracer.start_span(
            name,
            context=context_of(parent, parent_span),
            kind=SpanKind.CONSUMER,
            attributes=task_attributes(task, PROCESS, worker),
            links=links_to(parent_span),
        )


class SdkSpans:
    """Spans handed straight to an SDK tracer's span processor (see the module docstring).

    The sampling decision is the sampler's: asked as ``start_span`` asks it, except where
    its answer is known without asking (``decision_rule``): then a span that does not
    record costs two ids and a context, and no attributes are built for it.
    """

    def __init__(self, tracer: sdk_trace.Tracer) -> None:
        self._tracer = tracer
        self._ids = tracer.id_generator
        self._own_ids = type(self._ids) is RandomIdGenerator
        """Ids drawn here as RandomIdGenerator draws them, without two calls per span."""
        self._limits: SpanLimits = tracer._span_limits
        self._random_bit = RANDOM if self._ids.is_trace_id_random() else 0
        self._rule = decision_rule(tracer.sampler)
        self._producer = span_class(ReadableSpan, tracer, SpanKind.PRODUCER)
        self._consumer = span_class(
            AttemptSpan,
            tracer,
            SpanKind.CONSUMER,
            _limits=self._limits,
            _processor=tracer.span_processor,
        )
        self._end: Callable[[ReadableSpan], None] = tracer.span_processor.on_end
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
            self._ending(processors)
        return self._quiet and self._tracer._is_enabled()

    def _ending(self, processors: Sequence[sdk_trace.SpanProcessor]) -> None:
        """Where ended spans go: a lone processor directly (what the provider's own
        processor would do with it: hand it on), else the provider's processor."""
        processor = processors[0] if len(processors) == 1 else self._tracer.span_processor
        self._end = processor.on_end
        self._consumer._processor = processor

    def produce(
        self, name: str, parent: Context | None, parent_span: SpanContext, task: Task
    ) -> SpanContext:
        context, decision, kept = self._sample(
            name, parent, parent_span, SpanKind.PRODUCER, task, None
        )
        if decision is not DROP:
            now = time_ns()
            self._end(
                make_span(
                    self._producer,
                    name,
                    context,
                    parent_span if parent_span.is_valid else None,
                    task_attributes(task, CREATE) if kept is None else kept,
                    (),
                    now,
                    now,
                )
            )
        return context

    def consume(
        self,
        name: str,
        parent: Context | None,
        parent_span: SpanContext,
        task: Task,
        worker: str,
    ) -> trace.Span:
        context, decision, kept = self._sample(
            name, parent, parent_span, SpanKind.CONSUMER, task, worker
        )
        if decision is DROP:
            return trace.NonRecordingSpan(context)
        if kept is None:
            kept = task_attributes(task, PROCESS, worker)
        return make_span(
            self._consumer,
            name,
            context,
            parent_span if parent_span.is_valid else None,
            kept,
            links_to(parent_span),
            time_ns(),
            None,
        )

    def _sample(
        self,
        name: str,
        parent: Context | None,
        parent_span: SpanContext,
        kind: SpanKind,
        task: Task,
        worker: str | None,
    ) -> tuple[SpanContext, Decision, types.Attributes]:
        """The new span's context, the decision and the attributes the sampler kept (None:
        atp's own, built only if the span records), as ``Tracer.start_span`` has them."""
        valid = parent_span.is_valid
        trace_id = parent_span.trace_id if valid else self._new_trace_id()
        rule = self._rule
        decision = rule(parent_span, trace_id) if rule is not None else None
        kept: types.Attributes = None
        if decision is None:
            consumer = kind is SpanKind.CONSUMER
            attributes = task_attributes(task, PROCESS if consumer else CREATE, worker)
            links = links_to(parent_span) if consumer else ()
            decision, state, kept = self._ask(
                parent, parent_span, trace_id, name, kind, attributes, links
            )
        else:
            state = parent_span.trace_state if valid else None
        random = parent_span.trace_flags & RANDOM if valid else self._random_bit
        return self._context(trace_id, random | (decision is SAMPLE), state), decision, kept

    def _new_trace_id(self) -> int:
        if self._own_ids:  # RandomIdGenerator's loop draws again for the invalid id 0
            return getrandbits(128) or self._ids.generate_trace_id()
        return self._ids.generate_trace_id()

    def _context(self, trace_id: int, flags: int, state: TraceState | None) -> SpanContext:
        """The new span's context, with ``flags`` as ``start_span`` sets them: sampled
        or not, and random as its parent's trace id, or as the id generator's."""
        if not self._own_ids:
            return SpanContext(trace_id, self._ids.generate_span_id(), False, _FLAGS[flags], state)
        span_id = getrandbits(64) or self._ids.generate_span_id()
        # What SpanContext() builds; both ids are known to be valid.
        fields = (
            trace_id,
            span_id,
            False,
            _FLAGS[flags],
            DEFAULT_TRACE_STATE if state is None else state,
            True,
        )
        return tuple.__new__(SpanContext, fields)

    def _ask(
        self,
        parent: Context | None,
        parent_span: SpanContext,
        trace_id: int,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link],
    ) -> tuple[Decision, TraceState | None, types.Attributes]:
        """The sampler's decision, trace state and attributes (cleaned if it added some)."""
        result = self._tracer.sampler.should_sample(
            context_of(parent, parent_span), trace_id, name, kind, attributes, links
        )
        kept: types.Attributes = result.attributes
        if kept is not None and len(kept) != len(attributes):
            limits = self._limits
            kept = BoundedAttributes(
                limits.max_span_attributes,
                kept,
                immutable=False,
                max_value_len=limits.max_span_attribute_length,
            )
        return result.decision, result.trace_state, kept


def decision_rule(sampler: Sampler) -> Rule | None:
    """How ``sampler`` decides for a span with ``parent_span`` in trace ``trace_id``, where
    that is known without asking it (None where it is not): ``ALWAYS_ON`` and
    ``ALWAYS_OFF`` always answer the same; ``TraceIdRatioBased`` compares the trace id's
    low 64 bits with its bound; a ``ParentBased`` sampler with its default delegates
    follows a parent's sampled flag, and answers for a root span as its root sampler."""
    fixed = _fixed_decision(sampler)
    if fixed is not None:
        return lambda parent_span, trace_id: fixed
    if isinstance(sampler, TraceIdRatioBased) and _own(sampler, TraceIdRatioBased):
        bound, limit = sampler.bound, sampler.TRACE_ID_LIMIT
        return lambda parent_span, trace_id: SAMPLE if trace_id & limit < bound else DROP
    if not _default_parent_based(sampler):
        return None
    root = decision_rule(sampler._root)  # type: ignore[attr-defined]
    local = _default_local(sampler)

    def decide(parent_span: SpanContext, trace_id: int) -> Decision | None:
        if not parent_span.is_valid:
            return None if root is None else root(parent_span, trace_id)
        if parent_span.is_remote or local:
            return SAMPLE if parent_span.trace_flags.sampled else DROP
        return None

    return decide


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
        and _own(sampler, ParentBased)
        and getattr(sampler, "_remote_parent_sampled", None) is ALWAYS_ON
        and getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
        and hasattr(sampler, "_root")
    )


def _default_local(sampler: Sampler) -> bool:
    """Whether a ParentBased sampler's local-parent delegates are the defaults too."""
    return (
        getattr(sampler, "_local_parent_sampled", None) is ALWAYS_ON
        and getattr(sampler, "_local_parent_not_sampled", None) is ALWAYS_OFF
    )


def _own(sampler: Sampler, cls: type[Sampler]) -> bool:
    """Whether ``sampler`` decides with ``cls``'s own ``should_sample``."""
    return type(sampler).should_sample is cls.should_sample


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
