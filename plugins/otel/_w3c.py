"""W3C trace context in task headers, written and read without ``propagate.inject``/``extract``.

The ``traceparent`` header has a fixed format, and formatting or parsing it directly is
several times cheaper than going through the global propagator and a Context per call.
The result is the same as the SDK's TraceContext propagator: the same header string, and
the same remote SpanContext from it (the same validation, ``tracestate`` included). It is
used only while the global propagator is W3C (``Propagation.fast``); any other propagator
(B3, Jaeger...) goes through ``propagate`` as it is configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from opentelemetry import propagate
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanContext, TraceFlags, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

__all__ = ["Handoff", "Propagation", "headers_of", "parse"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
BAGGAGE = "baggage"
W3C_FIELDS = frozenset((TRACEPARENT, TRACESTATE, BAGGAGE))

# The TraceContext propagator's own pattern and limits (W3C Trace Context, level 1).
_FORMAT = re.compile(
    r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$"
)
_MAX_TRACEPARENT = 512
_MAX_TRACESTATE = 512
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_FLAGS = {f"{flags:02x}": TraceFlags(flags) for flags in range(4)}
_FLAGS_FIELD = [f"-{flags:02x}" for flags in range(256)]
HANDOFF_SIZE = 32768
"""Producer contexts the Handoff keeps for this process's consumers (~150 bytes each)."""


def headers_of(context: SpanContext) -> dict[str, str]:
    """The headers the TraceContext propagator writes for ``context``."""
    ids = (context.trace_id, context.span_id)
    # %-formatting two fields and a ready-made third is the cheapest way to write it.
    headers = {TRACEPARENT: "00-%032x-%016x" % ids + _FLAGS_FIELD[context.trace_flags]}  # noqa: UP031
    if context.trace_state:
        headers[TRACESTATE] = context.trace_state.to_header()
    return headers


def parse(headers: Mapping[str, str]) -> SpanContext | None:
    """The remote SpanContext in ``headers``, or None if absent or malformed."""
    header = headers.get(TRACEPARENT)
    if not header or len(header) > _MAX_TRACEPARENT:
        return None
    match = _FORMAT.match(header)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN or version == "ff":
        return None
    if version == "00" and rest:
        return None
    trace_flags = _FLAGS.get(flags) or TraceFlags(int(flags, 16))
    state = _state(headers[TRACESTATE]) if TRACESTATE in headers else None
    return SpanContext(int(trace_id, 16), int(span_id, 16), True, trace_flags, state)


def _state(header: str) -> TraceState | None:
    if len(header) > _MAX_TRACESTATE:
        return None
    return TraceState.from_header([header])


class Handoff:
    """The span context of each ``traceparent`` this process wrote, for its own consumers:
    ``take`` gives what ``parse`` would read from the same headers, without reading them.

    Only headers with no ``tracestate`` are kept (``put`` is given a context without
    one), and ``take`` reads nothing from headers that have one: a miss is parsed as
    before. The header string is the key, so a ``traceparent`` changed on the way misses.
    When a batch would take it past ``size``, all are dropped first (tasks published here
    and consumed elsewhere must not pin memory): the misses that follow are parsed.
    """

    def __init__(self, size: int = HANDOFF_SIZE) -> None:
        self._size = size
        self._sent: dict[str, SpanContext] = {}
        """The producer's own context by header: it exists already (its span holds it
        until exported), so keeping it allocates nothing per task."""

    def put(self, header: str, context: SpanContext) -> None:
        """Keep ``context`` (sampled or not), written as ``header``."""
        self.put_all([header], [context])

    def put_all(self, headers: Sequence[str], contexts: Sequence[SpanContext]) -> None:
        """Keep each of ``contexts``, written as the header beside it (one batch's)."""
        sent = self._sent
        if len(sent) + len(headers) > self._size:
            sent.clear()
        sent.update(zip(headers, contexts, strict=True))

    def take(self, headers: Mapping[str, str]) -> SpanContext | None:
        """The remote context kept for these headers' ``traceparent``, forgotten once
        taken (a retry parses its headers)."""
        if TRACESTATE in headers:
            return None
        header = headers.get(TRACEPARENT)
        sent = self._sent.pop(header, None) if header is not None else None
        if sent is None:
            return None
        # What SpanContext() builds, remote: the ids are those of a valid context.
        fields = (sent.trace_id, sent.span_id, True, sent.trace_flags, DEFAULT_TRACE_STATE, True)
        return tuple.__new__(SpanContext, fields)


class Propagation:
    """Whether the global propagator is W3C, asked once per call and cached by identity.

    A propagator that writes ``traceparent`` and nothing outside ``tracestate`` and
    ``baggage`` is taken to be W3C trace context (plus baggage): the default, and what
    ``OTEL_PROPAGATORS=tracecontext,baggage`` gives. Baggage is still written and read by
    ``propagate``: callers use the fast path only when no baggage is involved.
    """

    def __init__(self) -> None:
        self._seen: TextMapPropagator | None = None
        self._w3c = False

    def fast(self) -> bool:
        current = propagate.get_global_textmap()
        if current is not self._seen:
            fields = current.fields
            self._seen, self._w3c = current, TRACEPARENT in fields and fields <= W3C_FIELDS
        return self._w3c
