"""The fleet over gRPC (ADR 0040, 0041): ``atp.v1.Fleet`` from the generated stubs and
through the SDK's ``GrpcRemote`` (which reads back the same core types), its scope, and a
store without breakers answered FAILED_PRECONDITION; on an in-process server over the
memory backends."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc import aio

from atp.adapters._api.operations import Operations
from atp.adapters._auth import Guard, ServerSettings, TokenBook, new_token
from atp.adapters.grpc._server import GrpcServer
from atp.core.clock import ManualClock
from atp.core.errors import ConfigError, PermissionDenied
from atp.core.fleet import Fleet
from atp.core.flow.breaker import Breaker, BreakerState, Circuit, breaker_key
from atp.core.platform import Platform
from atp.core.ports import BreakerLedger, Lease, Member, Registry, Sample
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk._grpc import GrpcRemote
from atp.sdk.wire.pb import fleet_pb2 as fpb
from atp.sdk.wire.pb import fleet_pb2_grpc

NOW = 1_800_000_000.0
TTL = 15.0
SCOPES = {"reader": ["read"], "publisher": ["publish:orders.*"]}
Code = grpc.StatusCode
WORKER = Member(
    name="w1",
    role="worker",
    host="h1",
    pid=7,
    version="0.1.0",
    group="billing",
    patterns=("orders.*", "sms.>"),
    concurrency=4,
    running=1,
    started_at=NOW - 5,
    seen_at=NOW,
)


@dataclass
class Served:
    platform: Platform
    target: str
    tokens: dict[str, str]
    channel: aio.Channel
    clock: ManualClock

    @property
    def fleet(self) -> fleet_pb2_grpc.FleetStub:
        return fleet_pb2_grpc.FleetStub(self.channel)  # type: ignore[no-untyped-call]

    def auth(self, name: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[name]}"),)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    settings = Settings(store="memory://", transport="memory://", coordinator="memory://")
    clock = ManualClock(start=NOW)
    platform = Platform.build(settings, clock=clock, local=True)
    tokens, book = {}, []
    for name, scopes in SCOPES.items():
        tokens[name], token = new_token(name, scopes)
        book.append(token)
    guard = Guard(TokenBook(book), MemoryLimiter(clock), rate=10_000, burst=10_000)
    port = _free_port()
    server = GrpcServer(
        guard, Operations(platform, ServerSettings(auth=True)), "127.0.0.1", port, 1 << 20
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(server.run(stop))
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(platform, f"127.0.0.1:{port}", tokens, channel, clock)
    finally:
        await channel.close()
        stop.set()
        await serving
        await platform.close()


async def _populate(platform: Platform) -> tuple[Lease, BreakerState]:
    coordinator = platform.coordinator
    assert isinstance(coordinator, Registry)
    await coordinator.announce([WORKER], ttl=TTL)
    lease = await coordinator.acquire("scheduler", "sched-a", 10.0)
    assert lease is not None
    store = platform.store
    assert isinstance(store, BreakerLedger)
    policy = Breaker(min_volume=2, open_for=30)
    sample = Sample(breaker_key("billing", "orders.close"), policy, ok=0, failed=2, by="w1")
    [state] = await store.observe([sample], now=NOW)
    return lease, state


async def test_the_stubs_list_workers_the_leader_and_breakers(served):
    lease, _ = await _populate(served.platform)
    found = await served.fleet.ListWorkers(fpb.ListWorkersRequest(), metadata=served.auth("reader"))
    assert found.registry
    [worker] = found.workers
    assert (worker.name, worker.group, list(worker.patterns)) == (
        "w1",
        "billing",
        ["orders.*", "sms.>"],
    )
    assert (worker.running, worker.concurrency, worker.expires_at) == (1, 4, NOW + TTL)
    assert (found.leader.owner, found.leader.token, found.leader.lease) == (
        "sched-a",
        lease.token,
        "scheduler",
    )
    listed = await served.fleet.ListBreakers(
        fpb.ListBreakersRequest(), metadata=served.auth("reader")
    )
    [breaker] = listed.breakers
    assert (breaker.group, breaker.subject, breaker.circuit) == ("billing", "orders.close", "open")
    assert breaker.open_until == NOW + 30


async def test_no_leader_is_an_unset_field(served):
    found = await served.fleet.ListWorkers(fpb.ListWorkersRequest(), metadata=served.auth("reader"))
    assert not found.HasField("leader")
    remote = GrpcRemote(served.target, served.tokens["reader"])
    try:
        assert await remote.fleet.workers() == Fleet((), None, registry=True)
    finally:
        await remote.close()


async def test_the_sdk_reads_the_same_core_types_back(served):
    lease, state = await _populate(served.platform)
    remote = GrpcRemote(served.target, served.tokens["reader"])
    try:
        found = await remote.fleet.workers()
        [breaker] = await remote.fleet.breakers()
    finally:
        await remote.close()
    assert found == Fleet((dataclasses.replace(WORKER, expires_at=NOW + TTL),), lease, True)
    assert breaker == state
    assert (breaker.circuit, breaker.changed_by) == (Circuit.OPEN, "w1")


async def test_the_fleet_needs_scope_read(served):
    with pytest.raises(aio.AioRpcError) as caught:
        await served.fleet.ListWorkers(fpb.ListWorkersRequest(), metadata=served.auth("publisher"))
    assert caught.value.code() is Code.PERMISSION_DENIED
    remote = GrpcRemote(served.target, served.tokens["publisher"])
    try:
        with pytest.raises(PermissionDenied):
            await remote.fleet.breakers()
    finally:
        await remote.close()


async def test_a_store_without_breakers_is_failed_precondition(served):
    served.platform.store = object()
    with pytest.raises(aio.AioRpcError) as caught:
        await served.fleet.ListBreakers(fpb.ListBreakersRequest(), metadata=served.auth("reader"))
    assert caught.value.code() is Code.FAILED_PRECONDITION
    remote = GrpcRemote(served.target, served.tokens["reader"])
    try:
        with pytest.raises(ConfigError, match="keeps no circuit breakers"):
            await remote.fleet.breakers()
    finally:
        await remote.close()
