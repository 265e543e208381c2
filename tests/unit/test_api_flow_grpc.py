"""Flow control over gRPC (ADR 0038, 0039): ``atp.v1.FlowService`` driven from the generated
stubs and from the SDK's ``GrpcRemote``, its scopes and bad input (a key rule's weight
among them), and the publish options (concurrency_key, rate_key, group_key, dedup) with
``replaced`` and KeyActive, on an in-process server over the memory and SQLite stores."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio

from atp.adapters._api.operations import Operations
from atp.adapters._auth import Guard, ServerSettings, TokenBook, new_token
from atp.adapters.grpc._server import GrpcServer
from atp.core.clock import ManualClock
from atp.core.errors import KeyActive, NotFound, PermissionDenied
from atp.core.flow.rules import Limit, Rate
from atp.core.flow.service import ledger_of
from atp.core.model import Dedup, DedupMode, State
from atp.core.platform import Platform
from atp.core.ports import Wait
from atp.core.service import PublishRequest
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk._grpc import GrpcRemote
from atp.sdk.wire.pb import flow_pb2, flow_pb2_grpc, tasks_pb2_grpc
from atp.sdk.wire.pb import flow_pb2 as fpb
from atp.sdk.wire.pb import tasks_pb2 as pb

NOW = 1_800_000_000.0
RESERVE = 30.0  # how long a woken waiter holds its slot before its admit
SCOPES = {"admin": ["admin"], "reader": ["read"], "publisher": ["publish:orders.*"]}
Code = grpc.StatusCode


@dataclass
class Served:
    """One in-process gRPC server over a platform, and a bearer token per name of SCOPES."""

    platform: Platform
    clock: ManualClock
    target: str
    tokens: dict[str, str]
    channel: aio.Channel

    @property
    def flow(self) -> flow_pb2_grpc.FlowServiceStub:
        return flow_pb2_grpc.FlowServiceStub(self.channel)  # type: ignore[no-untyped-call]

    @property
    def tasks(self) -> tasks_pb2_grpc.TasksStub:
        return tasks_pb2_grpc.TasksStub(self.channel)  # type: ignore[no-untyped-call]

    def auth(self, name: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[name]}"),) if name else ()

    def remote(self, name: str = "admin") -> GrpcRemote:
        return GrpcRemote(self.target, self.tokens[name], clock=self.clock)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["memory", "sqlite"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    store = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'atp.db'}"
    settings = Settings(store=store, transport="memory://", coordinator="memory://")
    clock = ManualClock(start=NOW)
    platform = Platform.build(settings, clock=clock, local=True)
    tokens, book = {}, []
    for name, scopes in SCOPES.items():
        tokens[name], token = new_token(name, scopes)
        book.append(token)
    guard = Guard(TokenBook(book), MemoryLimiter(clock), rate=10_000, burst=10_000)
    operations = Operations(platform, ServerSettings(auth=True))
    port = _free_port()
    server = GrpcServer(guard, operations, "127.0.0.1", port, 1 << 20)
    stop = asyncio.Event()
    serving = asyncio.create_task(server.run(stop))
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(platform, clock, f"127.0.0.1:{port}", tokens, channel)
    finally:
        await channel.close()
        stop.set()
        await serving
        await platform.close()


async def _status_code(call: object) -> tuple[Code, dict[str, str]]:
    """The status code and trailers of an awaited call that must fail."""
    with pytest.raises(aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    trailers = {k: v for k, v in (caught.value.trailing_metadata() or ()) if isinstance(v, str)}
    return caught.value.code(), trailers


# -- limits and pauses -------------------------------------------------------------------


async def test_limits_round_trip_through_the_sdk(served):
    remote = served.remote()
    try:
        subject = Limit("orders.*", concurrency=3, rate=Rate(10, 1.0), burst=5)
        keyed = Limit("customer:*", key=True, concurrency=2, window=Rate(100, 60.0))
        stored = await remote.flow.set_limit(subject)
        await remote.flow.set_limit(keyed)
        status = await remote.flow.status()
        assert stored.updated_at == NOW
        assert {(limit.name, limit.updated_at) for limit in status.limits} == {
            ("subject:orders.*", NOW),
            ("key:customer:*", NOW),
        }
        by_name = {limit.name: limit for limit in status.limits}
        assert by_name["subject:orders.*"].rate == Rate(10, 1.0)
        assert by_name["subject:orders.*"].burst == 5
        assert by_name["key:customer:*"].window == Rate(100, 60.0)
        assert by_name["key:customer:*"].rate is None
        first_version = status.version
        await remote.flow.remove_limit("customer:*", key=True)
        after = await remote.flow.status()
        assert [limit.name for limit in after.limits] == ["subject:orders.*"]
        assert after.version > first_version
        with pytest.raises(NotFound, match="key:customer"):
            await remote.flow.remove_limit("customer:*", key=True)
        with pytest.raises(NotFound):  # the subject limit of that name is another rule
            await remote.flow.remove_limit("orders.*", key=True)
    finally:
        await remote.close()


async def test_a_key_rules_weight_round_trips(served):
    remote = served.remote()
    try:
        alone = await remote.flow.set_limit(Limit("tenant:*", key=True, weight=3))
        beside = await remote.flow.set_limit(
            Limit("tenant:big", key=True, concurrency=2, weight=1000)
        )
        assert alone == Limit("tenant:*", key=True, weight=3, updated_at=NOW)
        assert (beside.concurrency, beside.weight) == (2, 1000)
        status = await remote.flow.status()
        assert {limit.name: limit.weight for limit in status.limits} == {
            "key:tenant:*": 3,
            "key:tenant:big": 1000,
        }
        unweighted = await remote.flow.set_limit(Limit("tenant:big", key=True, concurrency=2))
        assert unweighted.weight is None
    finally:
        await remote.close()
    listed = await served.flow.GetLimits(fpb.GetLimitsRequest(), metadata=served.auth("admin"))
    by_target = {limit.target: limit for limit in listed.limits}
    assert by_target["tenant:*"].weight == 3
    assert not by_target["tenant:big"].HasField("weight")


async def test_set_limit_replaces_the_limit_of_its_target(served):
    remote = served.remote()
    try:
        await remote.flow.set_limit(Limit("orders.*", concurrency=3))
        await served.clock.advance(5)
        await remote.flow.set_limit(Limit("orders.*", rate=Rate(1, 2.0)))
        (only,) = (await remote.flow.status()).limits
        assert (only.concurrency, only.rate, only.updated_at) == (None, Rate(1, 2.0), NOW + 5)
    finally:
        await remote.close()


async def test_pause_and_resume_wake_the_tasks_the_pause_held(served):
    remote = served.remote()
    try:
        assert await remote.flow.pause("orders.*") is True
        assert await remote.flow.pause("orders.*") is False
        (held,) = await remote.tasks.publish([PublishRequest("orders.a", 1, delay=600)])
        await ledger_of(served.platform.store).park(
            [Wait("p:orders.a", held.id)], now=NOW, reserve=RESERVE
        )
        status = await remote.flow.status()
        assert status.pauses == ("orders.*",)
        assert status.waiting == {"p:orders.a": 1}
        await served.clock.advance(1)
        assert await remote.flow.resume("orders.*") == 1
        record = await remote.tasks.get(held.id)
        assert record.task.run_at == NOW + 1
        after = await remote.flow.status()
        assert (after.pauses, after.waiting) == ((), {})
        with pytest.raises(NotFound, match="not paused"):
            await remote.flow.resume("orders.*")
    finally:
        await remote.close()


async def test_a_reader_may_look_but_not_change_anything(served):
    reader = served.auth("reader")
    await served.flow.SetLimit(
        fpb.SetLimitRequest(target="orders.*", concurrency=2), metadata=served.auth("admin")
    )
    before = await served.flow.GetLimits(fpb.GetLimitsRequest(), metadata=reader)
    assert [limit.target for limit in before.limits] == ["orders.*"]
    attempts = [
        served.flow.SetLimit(fpb.SetLimitRequest(target="x.*", concurrency=1), metadata=reader),
        served.flow.SetLimit(fpb.SetLimitRequest(target="x.*"), metadata=reader),  # bad too
        served.flow.RemoveLimit(fpb.LimitTarget(target="orders.*"), metadata=reader),
        served.flow.Pause(fpb.PauseRequest(pattern="orders.*"), metadata=reader),
        served.flow.Resume(fpb.PauseRequest(pattern="orders.*"), metadata=reader),
    ]
    for call in attempts:
        code, trailers = await _status_code(call)
        assert code is Code.PERMISSION_DENIED
        assert trailers["atp-problem-type"].endswith("permission-denied")
    after = await served.flow.GetLimits(fpb.GetLimitsRequest(), metadata=reader)
    assert after == before


async def test_reading_needs_the_read_scope_and_a_token(served):
    code, _ = await _status_code(
        served.flow.GetLimits(fpb.GetLimitsRequest(), metadata=served.auth("publisher"))
    )
    assert code is Code.PERMISSION_DENIED
    code, _ = await _status_code(served.flow.GetLimits(fpb.GetLimitsRequest()))
    assert code is Code.UNAUTHENTICATED
    remote = served.remote("reader")
    try:
        with pytest.raises(PermissionDenied, match="admin"):
            await remote.flow.pause("orders.*")
    finally:
        await remote.close()


BAD_LIMITS = [
    fpb.SetLimitRequest(target="orders.*"),  # no concurrency, rate or window
    fpb.SetLimitRequest(target="orders.*", concurrency=0),
    fpb.SetLimitRequest(target="orders.*", concurrency=2, burst=3),  # a burst without a rate
    fpb.SetLimitRequest(target="orders.*", rate=fpb.Rate(count=0, per=1.0)),
    fpb.SetLimitRequest(target="orders.*", rate=fpb.Rate(count=1, per=0.0)),
    fpb.SetLimitRequest(target="orders.*", window=fpb.Rate(count=5, per=1e9)),
    fpb.SetLimitRequest(target="orders..x", concurrency=1),
    fpb.SetLimitRequest(target="", concurrency=1),
    fpb.SetLimitRequest(target="has space", key=True, concurrency=1),
    fpb.SetLimitRequest(target="a*b", key=True, concurrency=1),
    fpb.SetLimitRequest(target="orders.*", weight=2),  # a weight is for key rules
    fpb.SetLimitRequest(target="orders.*", concurrency=1, weight=2),
    fpb.SetLimitRequest(target="tenant:*", key=True, weight=0),
    fpb.SetLimitRequest(target="tenant:*", key=True, weight=1001),
    fpb.SetLimitRequest(target="tenant:*", key=True, weight=-1),
]


@pytest.mark.parametrize("request_", BAD_LIMITS, ids=range(len(BAD_LIMITS)))
async def test_a_bad_limit_is_invalid_argument_and_changes_nothing(served, request_):
    admin = served.auth("admin")
    before = await served.flow.GetLimits(fpb.GetLimitsRequest(), metadata=admin)
    code, trailers = await _status_code(served.flow.SetLimit(request_, metadata=admin))
    assert code is Code.INVALID_ARGUMENT
    assert trailers["atp-problem-type"].endswith("invalid-input")
    assert await served.flow.GetLimits(fpb.GetLimitsRequest(), metadata=admin) == before


@pytest.mark.parametrize("pattern", ["", "orders..x", "a b", ">.x"])
async def test_a_bad_pattern_is_invalid_argument_and_pauses_nothing(served, pattern):
    admin = served.auth("admin")
    for call in (served.flow.Pause, served.flow.Resume):
        code, _ = await _status_code(call(fpb.PauseRequest(pattern=pattern), metadata=admin))
        assert code is Code.INVALID_ARGUMENT
    status = await served.flow.GetLimits(fpb.GetLimitsRequest(), metadata=admin)
    assert (list(status.pauses), status.version) == ([], 0)


FLOW_RPCS = list(flow_pb2.DESCRIPTOR.services_by_name["FlowService"].methods)


@pytest.mark.parametrize("method", FLOW_RPCS, ids=[m.name for m in FLOW_RPCS])
async def test_a_malformed_request_is_invalid_argument_after_authentication(served, method):
    call = served.channel.unary_unary(f"/atp.v1.FlowService/{method.name}")
    code, trailers = await _status_code(call(b"\xff\xff\xff", metadata=served.auth("admin")))
    assert code is Code.INVALID_ARGUMENT
    assert trailers["atp-problem-type"].endswith("invalid-input")
    code, _ = await _status_code(call(b"\xff"))
    assert code is Code.UNAUTHENTICATED


async def test_a_huge_target_or_pattern_is_invalid_argument_with_a_short_detail(served):
    admin, huge = served.auth("admin"), "a" * 100_000
    calls = [
        served.flow.SetLimit(fpb.SetLimitRequest(target=huge, concurrency=1), metadata=admin),
        served.flow.SetLimit(
            fpb.SetLimitRequest(target=huge, key=True, concurrency=1), metadata=admin
        ),
        served.flow.RemoveLimit(fpb.LimitTarget(target=huge), metadata=admin),
        served.flow.Pause(fpb.PauseRequest(pattern=huge), metadata=admin),
        served.flow.Resume(fpb.PauseRequest(pattern=huge), metadata=admin),
    ]
    for call in calls:
        with pytest.raises(aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is Code.INVALID_ARGUMENT
        assert len(caught.value.details() or "") <= 600


# -- publish options ---------------------------------------------------------------------


async def test_flow_options_travel_with_the_task_both_ways(served):
    admin = served.auth("admin")
    message = pb.PublishRequest(
        subject="orders.a",
        payload=b"1",
        idempotency_key="order-1",
        concurrency_key="customer:42",
        rate_key="tenant:7",
        group_key="tenant:8",
        dedup=pb.Dedup(mode="throttle", period=30),
    )
    published = await served.tasks.Publish(message, metadata=admin)
    assert published.created
    assert not published.HasField("replaced")
    record = await served.tasks.GetTask(pb.TaskId(id=published.id), metadata=admin)
    assert (record.concurrency_key, record.rate_key) == ("customer:42", "tenant:7")
    assert record.group_key == "tenant:8"
    assert (record.dedup.mode, record.dedup.period) == ("throttle", 30.0)
    again = await served.tasks.Publish(message, metadata=admin)  # within the period
    assert (again.id, again.created) == (published.id, False)
    remote = served.remote()
    try:
        task = (await remote.tasks.get(published.id)).task
    finally:
        await remote.close()
    assert (task.concurrency_key, task.rate_key, task.group_key) == (
        "customer:42",
        "tenant:7",
        "tenant:8",
    )
    assert task.dedup == Dedup(DedupMode.THROTTLE, 30.0)


async def test_the_sdk_sends_a_group_key_over_grpc(served):
    remote = served.remote()
    try:
        (published,) = await remote.tasks.publish([PublishRequest("orders.a", group_key="t:1")])
        assert (await remote.tasks.get(published.id)).task.group_key == "t:1"
    finally:
        await remote.close()


async def test_a_plain_task_has_no_flow_fields(served):
    admin = served.auth("admin")
    published = await served.tasks.Publish(pb.PublishRequest(subject="orders.a"), metadata=admin)
    record = await served.tasks.GetTask(pb.TaskId(id=published.id), metadata=admin)
    flow_fields = ("concurrency_key", "rate_key", "group_key", "dedup")
    assert not any(record.HasField(name) for name in flow_fields)


async def test_a_debounced_publish_names_the_task_it_replaced(served):
    remote = served.remote()
    try:
        request = PublishRequest(
            "orders.a", 1, idempotency_key="k", dedup=Dedup(DedupMode.DEBOUNCE, 10)
        )
        (first,) = await remote.tasks.publish([request])
        await served.clock.advance(3)
        (second,) = await remote.tasks.publish([request])
        assert (first.replaced, first.run_at) == (None, NOW + 10)
        assert (second.replaced, second.created, second.run_at) == (first.id, True, NOW + 13)
        assert (await remote.tasks.get(first.id)).state is State.CANCELLED
    finally:
        await remote.close()


async def test_a_unique_key_held_by_an_active_task_is_key_active_with_its_details(served):
    admin = served.auth("admin")
    unique = pb.PublishRequest(
        subject="orders.a", idempotency_key="u", dedup=pb.Dedup(mode="unique")
    )
    first = await served.tasks.Publish(unique, metadata=admin)
    code, trailers = await _status_code(served.tasks.Publish(unique, metadata=admin))
    assert code is Code.ALREADY_EXISTS
    assert trailers["atp-problem-type"].endswith("key-active")
    details = json.loads(trailers["atp-problem-details"])
    assert details["conflicts"] == [{"index": 0, "task_id": first.id, "fields": []}]
    remote = served.remote()
    try:
        other = PublishRequest("orders.b", 2)
        again = PublishRequest("orders.a", None, idempotency_key="u", dedup=Dedup(DedupMode.UNIQUE))
        with pytest.raises(KeyActive, match=first.id) as caught:
            await remote.tasks.publish([other, again])
    finally:
        await remote.close()
    assert [(c.index, c.task_id) for c in caught.value.conflicts] == [(1, first.id)]
    assert caught.value.accepted[0] is not None
    assert caught.value.accepted[1] is None


BAD_PUBLISHES = [
    pb.PublishRequest(subject="orders.a", idempotency_key="k", dedup=pb.Dedup(mode="sometimes")),
    pb.PublishRequest(subject="orders.a", dedup=pb.Dedup(mode="unique")),  # no key
    pb.PublishRequest(subject="orders.a", idempotency_key="k", dedup=pb.Dedup(mode="debounce")),
    pb.PublishRequest(
        subject="orders.a", idempotency_key="k", dedup=pb.Dedup(mode="unique", period=5)
    ),
    pb.PublishRequest(
        subject="orders.a",
        idempotency_key="k",
        delay=5,
        dedup=pb.Dedup(mode="debounce", period=5),
    ),
    pb.PublishRequest(subject="orders.a", concurrency_key="has space"),
    pb.PublishRequest(subject="orders.a", rate_key=""),
    pb.PublishRequest(subject="orders.a", concurrency_key="x" * 201),
    pb.PublishRequest(subject="orders.a", group_key=""),
    pb.PublishRequest(subject="orders.a", group_key="tenant *"),
    pb.PublishRequest(subject="orders.a", group_key="tenant:*"),
]


@pytest.mark.parametrize("message", BAD_PUBLISHES, ids=range(len(BAD_PUBLISHES)))
async def test_bad_flow_options_are_invalid_argument_and_publish_nothing(served, message):
    admin = served.auth("admin")
    code, _ = await _status_code(served.tasks.Publish(message, metadata=admin))
    assert code is Code.INVALID_ARGUMENT
    remote = served.remote()
    try:
        assert (await remote.tasks.query()).items == []
    finally:
        await remote.close()
