"""Searching tasks by creation time and idempotency key: the id bounds a time range
becomes, the service, REST ``GET /v1/tasks``, gRPC ``ListTasks`` and ``atp task ls``.
The stores themselves are held to it by the conformance suite (``_store_listing``)."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from click.testing import CliRunner, Result
from grpc import aio

from atp.adapters._api.operations import Operations
from atp.adapters._auth import Guard, ServerSettings, TokenBook
from atp.adapters.cli import cli
from atp.adapters.grpc._server import GrpcServer
from atp.adapters.http import create_app
from atp.core.clock import ManualClock
from atp.core.errors import InvalidInput
from atp.core.ids import first_id, id_time, new_id
from atp.core.listing import check_query, id_bounds, parse_instant
from atp.core.platform import Platform
from atp.core.ports import TaskQuery
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk.wire.pb import tasks_pb2 as pb
from atp.sdk.wire.pb import tasks_pb2_grpc

MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")
T0 = 1_750_000_000.0


_MADE = itertools.count(1)


def stamped(at: float) -> str:
    """An id stamped with ``at``, sorting after every id made before it with the same
    time: ``new_id`` runs ahead of a test's clock once another test moved its own clock
    further (it never goes back), and its random part would order ids by chance."""
    return first_id(at)[:10] + f"{next(_MADE):016d}"


# -- the id bounds -------------------------------------------------------------------------


def test_a_time_is_the_smallest_id_of_its_millisecond() -> None:
    at = 1_750_000_000.1234
    made = new_id(T0)  # never a time ahead of the clock: later ids in this process follow it
    assert id_time(first_id(at)) == 1_750_000_000.123
    assert first_id(at) <= stamped(at) < first_id(at + 0.001)
    millis = round(id_time(made) * 1000)  # whole milliseconds: ``+ 0.001`` may round down
    assert first_id(millis / 1000) <= made < first_id((millis + 1) / 1000)
    assert first_id(-5.0) == "0" * 26
    assert first_id(1e300) > "7" + "Z" * 25  # past every id there can be


def test_the_bounds_join_the_range_and_the_cursor() -> None:
    low, high = first_id(T0), first_id(T0 + 60)
    cursor = stamped(T0 + 30)
    assert id_bounds(TaskQuery()) == (None, None)
    assert id_bounds(TaskQuery(created_after=T0, created_before=T0 + 60)) == (low, high)
    assert id_bounds(TaskQuery(cursor=cursor, created_before=T0 + 60)) == (None, cursor)
    later = stamped(T0 + 90)
    assert id_bounds(TaskQuery(cursor=later, created_after=T0, created_before=T0 + 60)) == (
        low,
        high,
    )


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        (TaskQuery(created_after=T0 + 1, created_before=T0), "later than created_before"),
        (TaskQuery(created_after=float("inf")), "created_after"),
        (TaskQuery(created_before=True), "created_before"),  # type: ignore[arg-type]
        (TaskQuery(created_before="soon"), "created_before"),  # type: ignore[arg-type]
        (TaskQuery(idempotency_key="k"), "give the task's subject"),
        (TaskQuery(subject="orders.*", idempotency_key="k"), "exact subject"),
        (TaskQuery(subject="orders.a", idempotency_key=""), "non-empty"),
    ],
)
def test_a_bad_range_or_key_is_refused(query: TaskQuery, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        check_query(query)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1750000000", 1_750_000_000.0),
        ("1750000000.25", 1_750_000_000.25),
        ("2025-06-15T15:06:40Z", 1_750_000_000.0),
        ("2025-06-15T17:06:40+02:00", 1_750_000_000.0),
        ("2025-06-15T15:06:40.5", 1_750_000_000.5),
    ],
)
def test_an_instant_is_rfc_3339_or_epoch_seconds(text: str, seconds: float) -> None:
    assert parse_instant(text, "t") == seconds


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01T00:00:00Z", "nan", "inf", ""])
def test_a_malformed_instant_names_its_parameter(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"^created_after: "):
        parse_instant(text, "created_after")


# -- the service, REST and gRPC -----------------------------------------------------------


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    built = Platform.build(MEMORY, clock=ManualClock(start=T0 + 3600), local=True)
    yield built
    await built.close()


async def _publish(platform: Platform) -> list[str]:
    """orders.a at T0, T0 + 10 (key k1) and T0 + 20; sms.send at T0 + 10 (key k1 too)."""
    requests = [
        PublishRequest("orders.a", task_id=stamped(T0), delay=60),
        PublishRequest("orders.a", task_id=stamped(T0 + 10), idempotency_key="k1", delay=60),
        PublishRequest("orders.a", task_id=stamped(T0 + 20), delay=60),
        PublishRequest("sms.send", task_id=stamped(T0 + 10), idempotency_key="k1", delay=60),
    ]
    return [published.id for published in await TaskService(platform).publish(requests)]


async def test_the_service_filters_by_time_and_key(platform: Platform) -> None:
    a0, a10, a20, s10 = await _publish(platform)
    service = TaskService(platform)

    async def ids(**filters: object) -> list[str]:
        return [r.id for r in (await service.query(**filters)).items]  # type: ignore[arg-type]

    assert await ids(created_after=T0 + 10) == [a20, s10, a10]
    assert await ids(subject="orders.*", created_before=T0 + 20) == [a10, a0]
    assert await ids(subject="orders.a", idempotency_key="k1") == [a10]
    assert await ids(subject="sms.send", idempotency_key="k1") == [s10]
    assert await ids(subject="orders.a", idempotency_key="k2") == []
    pages = await service.query(subject="orders.a", created_after=T0, limit=2)
    assert [r.id for r in pages.items] == [a20, a10]
    assert pages.next_cursor is not None
    rest = await service.query(subject="orders.a", created_after=T0, cursor=pages.next_cursor)
    assert ([r.id for r in rest.items], rest.next_cursor) == ([a0], None)


async def test_the_service_refuses_bad_filters_and_changes_nothing(platform: Platform) -> None:
    await _publish(platform)
    service = TaskService(platform)
    before = await platform.store.counts()
    with pytest.raises(InvalidInput, match="later than"):
        await service.query(created_after=T0 + 1, created_before=T0)
    with pytest.raises(InvalidInput, match="idempotency key must be 1 to"):
        await service.query(subject="orders.a", idempotency_key="k" * 1000)
    with pytest.raises(InvalidInput, match="exact subject"):
        await service.query(subject="orders.>", idempotency_key="k1")
    assert await platform.store.counts() == before


async def _http(platform: Platform) -> httpx.AsyncClient:
    guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1e6, burst=1e6, enabled=False)
    app = create_app(platform, guard, ServerSettings(auth=False))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://atp")


async def test_rest_lists_by_time_and_key(platform: Platform) -> None:
    a0, a10, a20, _ = await _publish(platform)
    async with await _http(platform) as http:

        async def ids(**params: str) -> list[str]:
            response = await http.get("/v1/tasks", params={"subject": "orders.a", **params})
            assert response.status_code == 200, response.text
            return [item["id"] for item in response.json()["items"]]

        assert await ids(created_after=str(T0 + 10)) == [a20, a10]
        assert await ids(created_before="2025-06-15T15:06:50Z") == [a0]  # T0 + 10
        assert await ids(created_after="2025-06-15T17:06:40+02:00", created_before="1e10") == [
            a20,
            a10,
            a0,
        ]
        assert await ids(idempotency_key="k1") == [a10]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"created_after": "yesterday"}, "created_after: 'yesterday' is not a time"),
        ({"created_after": "1750000001", "created_before": "1750000000"}, "later than"),
        ({"subject": "orders.*", "idempotency_key": "k1"}, "exact subject"),
        ({"idempotency_key": "k1"}, "subject"),
    ],
)
async def test_rest_answers_a_bad_filter_with_a_400_problem(
    platform: Platform, params: dict[str, str], fragment: str
) -> None:
    await _publish(platform)
    async with await _http(platform) as http:
        response = await http.get("/v1/tasks", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert fragment in response.json()["detail"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_grpc_list_tasks_filters_by_time_and_key(platform: Platform) -> None:
    a0, a10, a20, _ = await _publish(platform)
    guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1e6, burst=1e6, enabled=False)
    port = _free_port()
    ops = Operations(platform, ServerSettings(auth=False))
    server = GrpcServer(guard, ops, "127.0.0.1", port, 1 << 20)
    stop = asyncio.Event()
    serving = asyncio.create_task(server.run(stop))
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = tasks_pb2_grpc.TasksStub(channel)  # type: ignore[no-untyped-call]
            ranged = pb.ListTasksRequest(subject="orders.a", created_after=T0 + 10)
            assert [r.id for r in (await stub.ListTasks(ranged)).items] == [a20, a10]
            before = pb.ListTasksRequest(subject="orders.a", created_before=T0 + 10)
            assert [r.id for r in (await stub.ListTasks(before)).items] == [a0]
            keyed = pb.ListTasksRequest(subject="orders.a", idempotency_key="k1")
            assert [r.id for r in (await stub.ListTasks(keyed)).items] == [a10]
            bad = pb.ListTasksRequest(created_after=T0 + 1, created_before=T0)
            with pytest.raises(aio.AioRpcError) as refused:
                await stub.ListTasks(bad)
            assert refused.value.code().name == "INVALID_ARGUMENT"
    finally:
        stop.set()
        await serving


# -- atp task ls ---------------------------------------------------------------------------


def _atp(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _ids(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_task_ls_since_until_and_key(store_url: str) -> None:
    first = _ids(_atp("publish", "orders.a", "--delay", "1h"))
    keyed = _ids(_atp("publish", "orders.a", "--delay", "1h", "--idempotency-key", "k1"))
    both = keyed + first
    assert _ids(_atp("task", "ls", "--ids", "--since", "1h")) == both
    assert _ids(_atp("task", "ls", "--ids", "--since", "2000-01-01T00:00:00Z")) == both
    assert _ids(_atp("task", "ls", "--ids", "--until", "1h")) == []
    assert _ids(_atp("task", "ls", "--ids", "--since", "2h", "--until", "2099-01-01")) == both
    assert _ids(_atp("task", "ls", "--ids", "--subject", "orders.a", "--key", "k1")) == keyed
    assert _ids(_atp("task", "ls", "--ids", "--subject", "orders.a", "--key", "k2")) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--since", "soon"), "neither a duration nor an ISO 8601 time"),
        (("--since", "1h", "--until", "2h"), "later than created_before"),
        (("--key", "k1"), "give the task's subject"),
    ],
)
def test_task_ls_refuses_a_bad_filter(store_url: str, args: tuple[str, ...], fragment: str) -> None:
    result = _atp("task", "ls", *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output
