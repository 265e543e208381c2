"""The OpenTelemetry plugin: a producer span per published task, a consumer span per attempt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from atp.core.model import JSON, Task
from atp.core.plugins import hookimpl
from atp.core.settings import Settings
from atp.core.worker.interceptors import CallNext, HandlerCall, Interceptor
from atp.plugins.otel._setup import provider_from_env

__all__ = ["OtelPlugin", "TracingInterceptor", "task_attributes"]

SYSTEM = "atp"
SCOPE = "atp"


def task_attributes(task: Task, operation: str) -> dict[str, Any]:
    """Messaging semantic-convention attributes of a task, plus atp's own (``atp.*``)."""
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": task.subject,
        "messaging.message.id": task.id,
    }
    if task.attempt:
        attributes["atp.task.attempt"] = task.attempt
    if task.schedule is not None:
        attributes["atp.schedule"] = task.schedule
    if task.workflow_run is not None:
        attributes["atp.workflow.run_id"] = task.workflow_run
        attributes["atp.workflow.step"] = task.step or ""
    return attributes


class TracingInterceptor:
    """Runs each attempt in a CONSUMER span ``process <subject>``.

    Its parent is the producer's context from the task's ``traceparent`` header, so every
    attempt of a task (retries too) lands in the producer's trace, and it also carries a
    link to that producer span, as the messaging conventions ask. An exception marks the
    span as an error and is recorded on it; the handler's own spans nest under it.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    async def execute(self, call: HandlerCall, call_next: CallNext) -> JSON:
        task = call.task
        parent = propagate.extract(task.headers) if task.headers else Context()
        producer = trace.get_current_span(parent).get_span_context()
        links = [Link(producer)] if producer.is_valid else []
        attributes = task_attributes(task, "process")
        attributes["messaging.client.id"] = call.worker
        with self._tracer.start_as_current_span(
            f"process {task.subject}", context=parent, kind=SpanKind.CONSUMER,
            links=links, attributes=attributes,
        ):  # fmt: skip
            return await call_next(call)


class OtelPlugin:
    """Everything the plugin does; the module registers one built from ``OTEL_*``.

    Tests build their own on a provider with an in-memory exporter.
    """

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer: trace.Tracer | None = None
        self._runs: dict[str, trace.Span] = {}

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            self._provider = self._provider or provider_from_env()
            self._tracer = self._provider.get_tracer(SCOPE)
        return self._tracer

    @hookimpl
    def atp_configure(self, settings: Settings) -> None:
        """Set the tracer up at start-up, so a bad ``OTEL_*`` value fails there."""
        _ = self.tracer

    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        """One ``create <subject>`` PRODUCER span per task, ended at once; its context
        goes into the task's ``traceparent`` (and ``tracestate``, ``baggage``)."""
        return [self._produce(task) for task in tasks]

    def _produce(self, task: Task) -> dict[str, str]:
        parent = self._parent(task)
        span = self.tracer.start_span(f"create {task.subject}", context=parent,
                                      kind=SpanKind.PRODUCER,
                                      attributes=task_attributes(task, "create"))  # fmt: skip
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span, parent))
        span.end()
        return carrier

    def _parent(self, task: Task) -> Context:
        """The workflow run's span, else the producer's ``traceparent``, else the caller's."""
        run = self._runs.get(task.workflow_run or "")
        if run is not None:
            return trace.set_span_in_context(run)
        if "traceparent" in task.headers:
            return propagate.extract(task.headers)
        return otel_context.get_current()

    @hookimpl
    def atp_interceptors(self, settings: Settings) -> Sequence[Interceptor]:
        return [TracingInterceptor(self.tracer)]

    # -- workflows: the run is the parent of its steps' tasks --------------------------

    @hookimpl
    def atp_workflow_run_started(self, run_id: str, workflow: str) -> None:
        self._runs[run_id] = self.tracer.start_span(
            f"workflow {workflow}", kind=SpanKind.INTERNAL,
            attributes={"atp.workflow.name": workflow, "atp.workflow.run_id": run_id},
        )  # fmt: skip

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
