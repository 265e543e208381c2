"""Every RPC of the gRPC API fuzzed with hypothesis against a running server.

The RPCs are read from the generated descriptors, so a new one is fuzzed without a change
here. Each gets random bytes and random well-typed messages built from its input type's
fields (huge and odd strings, integers at their bounds, NaN and infinite doubles, long
repeated fields), sent with an admin token, a read token and none. No answer may be
UNKNOWN or INTERNAL (nor UNAVAILABLE, UNIMPLEMENTED or DATA_LOSS), every answer must
decode as the method's output type, the server must keep serving its health check, and
its log must hold no traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atp.sdk.wire.pb import consumer_pb2, schedules_pb2, tasks_pb2, workflows_pb2
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 60
"""Examples per RPC: 29 RPCs take about 20 s on a quiet machine."""
STREAM_WAIT = 0.3
"""Seconds a Retrieve waits for a first task; one that would wait longer is ended."""
CALL_TIMEOUT = 30.0
BAD = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.DATA_LOSS,
}
METHODS = [
    method
    for module in (tasks_pb2, consumer_pb2, schedules_pb2, workflows_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
LONG = 20_000
"""Items in a long repeated field (of small values, so a message stays under the limit)."""
ODD_WORDS = [
    "",
    " ",
    "orders.fuzz",
    "a..b",
    "\x00",
    "é☃🎉",
    "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "A" * 1_000_000,
    "é" * 300_000,
    "orders." + "x" * 10_000,
]
ODD_JSON = [
    b"",
    b"1e999",
    b"NaN",
    b"{",
    b"[" * 10_000 + b"]" * 10_000,
    b'"' + b"x" * 2_000_000 + b'"',
]
ODD_DOUBLES = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-300, 1e308, 2.0**63]
PLAIN_WORDS = ["orders.fuzz", "orders.*", "orders.>", "g1", "w", "0 * * * *", "UTC", "DEAD"]
PLAIN_JSON = [
    b"",
    b"null",
    b'{"n": 1}',
    b'{"name": "w", "steps": [{"name": "a", "subject": "orders.fuzz"}]}',
]
_INTS = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}


# -- strategies from descriptors ---------------------------------------------------------


def requests(method: MethodDescriptor) -> st.SearchStrategy[bytes]:
    """Random bytes, or a message of the method's input type: plain (values a caller
    would send, to reach past validation) or odd (bounds, huge, long), encoded."""
    plain, odd = messages(method.input_type, True), messages(method.input_type, False)
    encoded = st.one_of(plain, odd).map(lambda m: m.SerializeToString())
    return st.one_of(st.binary(max_size=200), encoded)


def messages(descriptor: Descriptor, plain: bool, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of ``descriptor``'s type: any subset of their fields set, or when
    ``plain`` every field but those with presence (``optional`` and message fields)."""
    fields = {f.name: _field(f, plain, depth) for f in descriptor.fields}
    always = {f.name for f in descriptor.fields if plain and not f.has_presence}
    required = {name: fields.pop(name) for name in always}
    make = GetMessageClass(descriptor)
    return st.fixed_dictionaries(required, optional=fields).map(lambda values: make(**values))


def _field(field: FieldDescriptor, plain: bool, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields
        small = st.dictionaries(_one(key, plain, depth), _one(value, plain, depth), max_size=3)
        long = _small(value).map(lambda v: {f"h{n}": v for n in range(LONG)})
        return small if plain else st.one_of(small, long)
    one = _one(field, plain, depth)
    if not field.is_repeated:
        return one
    short = st.lists(one, max_size=3)
    return short if plain else st.one_of(short, _small(field).map(lambda v: [v] * LONG))


def _one(field: FieldDescriptor, plain: bool, depth: int) -> st.SearchStrategy[Any]:
    """One value of ``field``'s type."""
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_MESSAGE:
        return messages(field.message_type, plain, depth + 1) if depth < 2 else st.just(None)
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    if kind in _INTS:
        low, high = _INTS[kind]
        odd = st.one_of(st.sampled_from([low, -1, 1001, high]), st.integers(low, high))
        return st.sampled_from([0, 1, 5, 30]) if plain else odd
    if kind in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        width = 32 if kind == FieldDescriptor.CPPTYPE_FLOAT else 64
        odd = st.one_of(st.sampled_from(ODD_DOUBLES), st.floats(width=width))
        return st.sampled_from([0.0, 1.0, 30.0]) if plain else odd
    if field.type == FieldDescriptor.TYPE_BYTES:
        odd = st.one_of(st.sampled_from(ODD_JSON), st.binary(max_size=40))
        return st.sampled_from(PLAIN_JSON) if plain else odd
    odd = st.one_of(st.sampled_from(ODD_WORDS), st.text(max_size=40))
    return st.sampled_from(PLAIN_WORDS) if plain else odd


def _small(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    """One small value of a repeated field, to repeat LONG times."""
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        fields = field.message_type.fields_by_name
        values = {"subject": "orders.fuzz"} if "subject" in fields else {}
        return st.just(GetMessageClass(field.message_type)(**values))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.just(b"1")
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.sampled_from(PLAIN_WORDS)
    return _one(field, True, 2)


# -- calling the server ------------------------------------------------------------------


class Caller:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(
            server.grpc_target, options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def metadata(self, token: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.server.tokens[token]}"),) if token else ()

    def call(self, method: MethodDescriptor, data: bytes, token: str | None) -> None:
        """Send ``data``; fail on a bad status or an answer that is not the output type."""
        path = f"/{method.containing_service.full_name}/{method.name}"
        output = GetMessageClass(method.output_type)
        failed: grpc.RpcError | None = None
        try:
            if method.server_streaming:
                self._first(path, data, token, output)
            else:
                call = self.channel.unary_unary(path)
                output.FromString(call(data, metadata=self.metadata(token), timeout=CALL_TIMEOUT))
        except grpc.RpcError as exc:
            failed = exc
        if failed is not None:
            code, details = failed.code(), failed.details() or ""
            assert code not in BAD, f"{path}: {code} {details[:500]}"

    def _first(self, path: str, data: bytes, token: str | None, output: Any) -> None:
        stream = self.channel.unary_stream(path)(
            data, metadata=self.metadata(token), timeout=STREAM_WAIT
        )
        try:
            output.FromString(next(stream))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            stream.cancel()

    def serving(self) -> bool:
        request = health_pb2.HealthCheckRequest(service="")
        answer = self.health.Check(request, timeout=CALL_TIMEOUT)
        return answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def caller(api_server: ApiServer) -> Iterator[Caller]:
    made = Caller(api_server)
    yield made
    made.channel.close()


def fuzzer(caller: Caller, method: MethodDescriptor) -> Any:
    """A hypothesis test of ``method``: each example is one call, then a health check."""

    @given(data=requests(method), token=st.sampled_from(["admin", "reader", None]))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(data: bytes, token: str | None) -> None:
        caller.call(method, data, token)
        assert caller.serving()

    return fuzz


def test_every_rpc_answers_fuzzed_requests_without_a_server_error(caller, api_server):
    assert len(METHODS) >= 29
    for method in METHODS:
        fuzzer(caller, method)()
    assert "Traceback" not in api_server.log_text()
