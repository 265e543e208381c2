"""The OpenTelemetry plugin: a producer span per published task, a consumer span per attempt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
)

from atp.core.model import JSON, Task
from atp.core.plugins import hookimpl
from atp.core.settings import Settings
from atp.core.worker.interceptors import CallNext, HandlerCall, Interceptor
from atp.plugins.otel._attributes import task_attributes
from atp.plugins.otel._export import LONG_RUNNING, budget_for
from atp.plugins.otel._setup import provider_from_env
from atp.plugins.otel._spans import EMPTY, Recorder, Spans
from atp.plugins.otel._w3c import (
    BAGGAGE,
    TRACEPARENT,
    TRACESTATE,
    Handoff,
    Propagation,
    headers_of,
    parse,
)

__all__ = ["OtelPlugin", "TracingInterceptor", "task_attributes"]

SCOPE = "atp"
SPAN_KEY = next(iter(trace.set_span_in_context(INVALID_SPAN, EMPTY)))
"""The Context key of the current span, as ``set_span_in_context`` writes it."""


def extract(
    headers: Mapping[str, str], fast: bool, handoff: Handoff | None = None
) -> tuple[Context | None, SpanContext]:
    """The producer's span context in task headers, and the whole Context extracted with
    it: on the fast path (W3C, no baggage), where the Context would hold nothing else and
    is None, taken from ``handoff`` when this process wrote the headers, else parsed
    directly; else by the configured propagator."""
    if fast and BAGGAGE not in headers:
        found = handoff.take(headers) if handoff is not None else None
        return None, found or parse(headers) or INVALID_SPAN_CONTEXT
    parent = propagate.extract(headers)
    return parent, trace.get_current_span(parent).get_span_context()


class TracingInterceptor:
    """Runs each attempt in a CONSUMER span ``process <subject>``.

    Its parent is the producer's context from the task's ``traceparent`` header, so every
    attempt of a task (retries too) lands in the producer's trace, and it also carries a
    link to that producer span, as the messaging conventions ask. An exception marks the
    span as an error and is recorded on it; the handler's own spans nest under it. A trace
    the producer did not sample gets a non-recording span: ids and context, nothing more.
    """

    def __init__(
        self,
        tracer: trace.Tracer,
        recorder: Recorder | None = None,
        propagation: Propagation | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        self._recorder = recorder or Recorder(tracer)
        self._propagation = propagation or Propagation()
        self._handoff = handoff

    async def execute(self, call: HandlerCall, call_next: CallNext) -> JSON:
        task = call.task
        parent: Context | None = None
        producer = INVALID_SPAN_CONTEXT
        if task.headers:
            parent, producer = extract(task.headers, self._propagation.fast(), self._handoff)
        span = self._recorder.spans().consume(
            f"process {task.subject}", parent, producer, task, call.worker
        )
        # What ``start_as_current_span`` does, without its two context managers.
        current = (
            Context({SPAN_KEY: span}) if parent is None else trace.set_span_in_context(span, parent)
        )
        token = otel_context.attach(current)
        try:
            return await call_next(call)
        except Exception as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end()


class OtelPlugin:
    """Everything the plugin does; the module registers one built from ``OTEL_*``.

    Tests build their own on a provider with an in-memory exporter.
    """

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer: trace.Tracer | None = None
        self._recorder: Recorder | None = None
        self._propagation = Propagation()
        self._runs: dict[str, trace.Span] = {}
        self._handoff = Handoff()
        self._consumes = False
        """Whether a worker of this process traces attempts: only then are producer
        contexts kept in the handoff for it."""
        self._budget = LONG_RUNNING

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            self._provider = self._provider or provider_from_env(budget=self._budget)
            self._tracer = self._provider.get_tracer(SCOPE)
        return self._tracer

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = Recorder(self.tracer)
        return self._recorder

    @hookimpl
    def atp_configure(self, settings: Settings) -> None:
        """Set the tracer up at start-up, so a bad ``OTEL_*`` value fails there; a one-shot
        command's exporter gets the short budget, so it never waits on a collector."""
        self._budget = budget_for(settings)
        _ = self.tracer

    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        """One ``create <subject>`` PRODUCER span per task, ended at once; its context
        goes into the task's ``traceparent`` (and ``tracestate``, ``baggage``).

        The caller's context is looked up once per batch; on the fast path (a W3C
        propagator, no baggage) the headers are formatted directly, and a worker of this
        process is handed each context rather than parsing it back."""
        recorder, propagation = self.recorder, self._propagation
        spans, fast = recorder.spans(), propagation.fast()
        current = otel_context.get_current()
        fast = fast and not baggage.get_all(current)
        caller = (current, trace.get_current_span(current).get_span_context())
        if fast:
            return self._formatted(tasks, spans, caller)
        return self._propagated(tasks, spans, caller)

    def _formatted(
        self, tasks: Sequence[Task], spans: Spans, caller: tuple[Context, SpanContext]
    ) -> list[Mapping[str, str] | None]:
        """The fast path's headers: formatted directly, each context kept in the handoff
        for this process's worker (when it has one)."""
        answers: list[Mapping[str, str] | None] = []
        keep, kept, written = self._consumes, [], []
        for task in tasks:
            parent, parent_span = self._parent(task, True, caller)
            context = spans.produce(f"create {task.subject}", parent, parent_span, task)
            answer = headers_of(context) if context.is_valid else None
            if keep and answer is not None and TRACESTATE not in answer:
                kept.append(context)
                written.append(answer[TRACEPARENT])
            answers.append(answer)
        if kept:
            self._handoff.put_all(written, kept)
        return answers

    def _propagated(
        self, tasks: Sequence[Task], spans: Spans, caller: tuple[Context, SpanContext]
    ) -> list[Mapping[str, str] | None]:
        """The headers the configured propagator writes (and the parent's baggage)."""
        answers: list[Mapping[str, str] | None] = []
        for task in tasks:
            parent, parent_span = self._parent(task, False, caller)
            context = spans.produce(f"create {task.subject}", parent, parent_span, task)
            answers.append(_injected(context, parent))
        return answers

    def _parent(
        self, task: Task, fast: bool, caller: tuple[Context, SpanContext]
    ) -> tuple[Context | None, SpanContext]:
        """The workflow run's span, else the producer's ``traceparent``, else the caller's."""
        run = self._runs.get(task.workflow_run) if task.workflow_run is not None else None
        if run is not None:
            return trace.set_span_in_context(run), run.get_span_context()
        if TRACEPARENT in task.headers:
            return extract(task.headers, fast)
        return caller

    @hookimpl
    def atp_interceptors(self, settings: Settings) -> Sequence[Interceptor]:
        self._consumes = True
        return [TracingInterceptor(self.tracer, self.recorder, self._propagation, self._handoff)]

    # -- workflows: the run is the parent of its steps' tasks --------------------------

    @hookimpl
    def atp_workflow_run_started(self, run_id: str, workflow: str) -> None:
        self._runs[run_id] = self.tracer.start_span(
            f"workflow {workflow}",
            kind=SpanKind.INTERNAL,
            attributes={"atp.workflow.name": workflow, "atp.workflow.run_id": run_id},
        )

    @hookimpl
    def atp_workflow_step_finished(self, run_id: str, step: str, state: str) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            run.add_event("step finished", {"atp.workflow.step": step, "atp.state": state})

    @hookimpl
    def atp_workflow_run_finished(self, run_id: str, workflow: str, state: str) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        run.set_attribute("atp.state", state)
        if state != "SUCCEEDED":
            run.set_status(Status(StatusCode.ERROR, f"workflow run {state}"))
        run.end()


def _injected(context: SpanContext, parent: Context | None) -> Mapping[str, str]:
    """The headers the configured propagator writes for ``context`` (and the parent's
    baggage)."""
    carrier: dict[str, str] = {}
    span = trace.NonRecordingSpan(context)
    propagate.inject(carrier, context=trace.set_span_in_context(span, parent or EMPTY))
    return carrier
