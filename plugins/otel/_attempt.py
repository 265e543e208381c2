"""The live consumer span of one attempt, recorded straight to the span processor."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types

__all__ = ["READABLE_FIELDS", "AttemptSpan", "make_span", "span_class"]

log = logging.getLogger("atp.plugins.otel")

READABLE_FIELDS = frozenset(
    (
        "_name",
        "_context",
        "_kind",
        "_parent",
        "_resource",
        "_attributes",
        "_events",
        "_links",
        "_status",
        "_start_time",
        "_end_time",
        "_instrumentation_info",
        "_instrumentation_scope",
    )
)
"""The ReadableSpan fields AttemptSpan reads and writes, as the SDK's own ``Span`` does;
``SdkSpans.supports`` checks the installed SDK still has them."""

R = TypeVar("R", bound=ReadableSpan)
OWN_FIELDS = ("_name", "_context", "_parent", "_attributes", "_links", "_start_time", "_end_time")
"""The fields ``make_span`` sets on each span; the others are its class's."""


def span_class(base: type[R], tracer: sdk_trace.Tracer, kind: SpanKind, **extra: Any) -> type[R]:
    """A subclass of ``base`` holding, as class attributes, the fields every span of
    ``kind`` from ``tracer`` shares, as ``ReadableSpan`` sets them (a field a newer SDK
    adds keeps its default), plus ``extra``. A span of it sets only ``OWN_FIELDS``: no
    per-span copy of the shared ones, and no ``__dict__`` for the garbage collector."""
    probe = ReadableSpan(
        name="",
        resource=tracer.resource,
        kind=kind,
        instrumentation_info=tracer.instrumentation_info,
        instrumentation_scope=tracer._instrumentation_scope,
    )
    shared = {key: value for key, value in vars(probe).items() if key not in OWN_FIELDS}
    namespace = {"__module__": base.__module__, "__qualname__": base.__qualname__}
    return type(base.__name__, (base,), {**namespace, **shared, **extra})


def make_span(
    cls: type[R],
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    attributes: types.Attributes,
    links: Sequence[Link],
    start: int,
    end: int | None,
) -> R:
    """A span of ``cls`` (from ``span_class``) with these fields: what ``ReadableSpan(...)``
    builds, without its keyword handling (two of these are made per task)."""
    span = object.__new__(cls)
    span._name = name
    span._context = context
    span._parent = parent
    span._attributes = attributes
    span._links = links
    span._start_time = start
    span._end_time = end
    return span


class AttemptSpan(trace.Span, ReadableSpan):
    """A consumer span as handler code sees it through ``trace.get_current_span()``.

    It behaves as the SDK's ``Span`` for everything a handler may do (attributes, events,
    links, status, exceptions, a new name; span limits apply), and is itself the
    ``ReadableSpan`` handed to the processor at ``end``: nothing changes it afterwards.
    atp's own attributes stay a plain mapping (they are known to be valid); the first one
    handler code sets turns them into the SDK's bounded, cleaning mapping. Made by
    ``make_span`` from a ``span_class`` that also holds ``_processor`` and ``_limits``.
    """

    _processor: sdk_trace.SpanProcessor
    _limits: sdk_trace.SpanLimits

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._open("set_attribute"):
            self._bounded()[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._open("set_attributes"):
            bounded = self._bounded()
            for key, value in attributes.items():
                bounded[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if not self._open("add_event"):
            return
        limits = self._limits
        bounded = self._limited(limits.max_event_attributes, attributes)
        if not isinstance(self._events, BoundedList):
            self._events = BoundedList(limits.max_events)
        self._events.append(Event(name, bounded, timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        valid = context and (context.is_valid or attributes or context.trace_state)
        if not self._open("add_link") or not valid:
            return
        limits = self._limits
        bounded = self._limited(limits.max_link_attributes, attributes)
        if not isinstance(self._links, BoundedList):
            self._links = BoundedList.from_seq(limits.max_links, self._links)
        self._links.append(Link(context, bounded))

    def _limited(self, most: int | None, attributes: types.Attributes) -> BoundedAttributes:
        """Read-only ``attributes``, at most ``most`` of them, values cut to the limit."""
        max_len = self._limits.max_attribute_length
        return BoundedAttributes(most, attributes, immutable=True, max_value_len=max_len)

    def update_name(self, name: str) -> None:
        if self._open("update_name"):
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's: an OK status is final, UNSET is ignored."""
        if not self._open("set_status") or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event with the semantic-convention attributes, as the SDK's."""
        module, qualname = type(exception).__module__, type(exception).__qualname__
        named = f"{module}.{qualname}" if module and module != "builtins" else qualname
        event: dict[str, types.AnyValue] = {
            "exception.type": named,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:  # once per attempt: the check inlined
            self._open("end")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._processor.on_end(self)

    def _open(self, what: str) -> bool:
        if self._end_time is None:
            return True
        log.warning("Tried calling %s on an ended span.", what)
        return False

    def _bounded(self) -> BoundedAttributes:
        if not isinstance(self._attributes, BoundedAttributes):
            limits = self._limits
            self._attributes = BoundedAttributes(
                limits.max_span_attributes,
                self._attributes,
                immutable=False,
                max_value_len=limits.max_span_attribute_length,
            )
        return self._attributes
