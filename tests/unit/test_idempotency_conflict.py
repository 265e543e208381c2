"""An idempotency key reused with other parameters is a conflict naming the existing task
(ADR 0034): in the service, over REST and gRPC, in the SDK's remote clients and the CLI."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from atp.adapters._api.operations import Operations
from atp.adapters._auth import Guard, ServerSettings, TokenBook
from atp.adapters.cli import cli
from atp.adapters.grpc._server import GrpcServer
from atp.adapters.http import create_app
from atp.core.clock import ManualClock
from atp.core.errors import AlreadyExists, IdempotencyConflict, KeyConflict
from atp.core.model import RetryPolicy, Task
from atp.core.platform import Platform
from atp.core.plugins import hookimpl
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk import App, Client
from atp.sdk._http import HttpRemote
from atp.sdk.testing import TestPlatform

NOW = 1_800_000_000.0
MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")
SECRET = {"card": "4111-1111"}


@pytest.fixture
async def tp() -> AsyncIterator[TestPlatform]:
    async with TestPlatform(App(), clock=ManualClock(start=NOW), workers=0) as platform:
        yield platform


def test_the_conflict_is_an_already_exists_error_with_its_own_problem_type():
    assert issubclass(IdempotencyConflict, AlreadyExists)
    assert IdempotencyConflict.http_status == 409
    assert IdempotencyConflict.grpc_code == "ALREADY_EXISTS"
    assert IdempotencyConflict.type_slug == "idempotency-conflict"


async def test_the_same_parameters_return_the_existing_task_whatever_the_delay(tp):
    first = await tp.client.publish("orders.close", SECRET, idempotency_key="k", delay=60)
    again = await tp.client.publish("orders.close", SECRET, idempotency_key="k", delay=5)
    assert (again.id, again.created, again.run_at) == (first.id, False, NOW + 60)


async def test_another_payload_is_refused_naming_the_task_not_the_values(tp):
    first = await tp.client.publish("orders.close", SECRET, idempotency_key="k")
    with pytest.raises(IdempotencyConflict) as caught:
        await tp.client.publish("orders.close", {"card": "5500-0000"}, idempotency_key="k")
    error = caught.value
    assert error.message == (
        f"key 'k' on orders.close belongs to task {first.id}, published with another payload"
    )
    assert "4111" not in error.message
    assert "5500" not in error.message
    assert [(c.index, c.task_id, c.fields) for c in error.conflicts] == [
        (0, first.id, ("payload",))
    ]
    assert error.accepted == ()
    assert sum((await tp.client.counts()).values()) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"headers": {"tenant": "b"}}, "headers"),
        ({"max_attempts": 3}, "max_attempts"),
        ({"timeout": 9}, "timeout"),
        ({"priority": 1}, "priority"),
        ({"retry": RetryPolicy(base=2)}, "retry"),
    ],
)
async def test_each_parameter_a_producer_gives_is_compared(
    tp: TestPlatform, change: dict[str, Any], field: str
) -> None:
    base: dict[str, Any] = {"idempotency_key": "k", "headers": {"tenant": "a"}}
    await tp.client.publish("a.b", 1, **base)
    with pytest.raises(IdempotencyConflict) as caught:
        await tp.client.publish("a.b", 1, **{**base, **change})
    assert caught.value.conflicts[0].fields == (field,)


async def test_payloads_compare_as_json_values(tp):
    await tp.client.publish("a.b", {"x": 1, "y": [1.5]}, idempotency_key="k")
    assert not (await tp.client.publish("a.b", {"y": [1.5], "x": 1}, idempotency_key="k")).created
    with pytest.raises(IdempotencyConflict):
        await tp.client.publish("a.b", {"x": True, "y": [1.5]}, idempotency_key="k")


class Tracing:
    """Adds a new trace context and a plugin header to every publish, as the otel plugin
    adds ``traceparent``."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        self.calls += 1
        return [{"traceparent": f"00-{self.calls:032x}-{1:016x}-01", "x-plugin": "p"}] * len(tasks)


async def test_headers_of_the_call_or_of_plugins_never_conflict():
    async with TestPlatform(App(), plugins=[Tracing()], workers=0) as tp:
        first = await tp.client.publish("a.b", headers={"tenant": "a"}, idempotency_key="k")
        given = {
            "tenant": "a",
            "tracestate": "mine=1",
            "traceparent": f"00-{'9' * 32}-{'1' * 16}-01",
        }
        again = await tp.client.publish("a.b", headers=given, idempotency_key="k")
        assert (again.id, again.created) == (first.id, False)
        with pytest.raises(IdempotencyConflict, match="another headers"):
            await tp.client.publish("a.b", headers={"tenant": "b"}, idempotency_key="k")


async def test_a_batch_repeating_a_key_with_other_parameters_writes_nothing(tp):
    same = [tp.client.request("a.b", 1, idempotency_key="k") for _ in range(2)]
    assert len({p.id for p in await tp.client.publish_many(same)}) == 1
    other = [
        tp.client.request("a.c"),
        tp.client.request("a.c", 1, idempotency_key="k"),
        tp.client.request("a.c", 2, idempotency_key="k"),
    ]
    with pytest.raises(IdempotencyConflict, match="item 2 repeats the key of item 1") as caught:
        await tp.client.publish_many(other)
    assert [(c.index, c.task_id) for c in caught.value.conflicts] == [(2, None)]
    assert sum((await tp.client.counts()).values()) == 1


async def test_a_batch_conflicting_with_an_earlier_task_names_what_it_accepted(tp):
    first = await tp.client.publish("a.b", 1, idempotency_key="k")
    batch = [tp.client.request("a.b", 2, idempotency_key="k"), tp.client.request("a.b", 3)]
    with pytest.raises(IdempotencyConflict, match=r"items 0 refused; the other 1") as caught:
        await tp.client.publish_many(batch)
    accepted = caught.value.accepted
    assert accepted[0] is None
    assert accepted[1] is not None
    assert (await tp.get(accepted[1])).task.payload == 3
    assert caught.value.conflicts[0].task_id == first.id


async def test_a_cron_firing_or_workflow_step_keeps_answering_the_existing_task(tp):
    service = TaskService(tp.platform)

    def firing(payload: int) -> PublishRequest:
        return PublishRequest("a.b", payload, idempotency_key="cron:x:1", schedule="x", tick=NOW)

    def step(payload: int) -> PublishRequest:
        return PublishRequest("a.c", payload, idempotency_key="wf:r:s", workflow_run="r", step="s")

    (first,) = await service.publish([firing(1)])
    (again,) = await service.publish([firing(2)])
    await service.publish([step(1)])
    (repeat,) = await service.publish([step(2)])
    assert (again.id, again.created, repeat.created) == (first.id, False, False)


async def test_a_matched_task_that_is_gone_stands_as_the_answer(tp, monkeypatch):
    first = await tp.client.publish("a.b", 1, idempotency_key="k")
    store = tp.platform.store

    async def pruned(ids: Sequence[str]) -> list[None]:
        return [None for _ in ids]

    monkeypatch.setattr(store, "get", pruned)
    (again,) = await TaskService(tp.platform).publish(
        [PublishRequest("a.b", 2, idempotency_key="k")]
    )
    assert (again.id, again.created) == (first.id, False)


def test_details_travel_as_json_and_back():
    error = IdempotencyConflict("m", [KeyConflict(1, "01B", ("payload",))], ["01A", None])
    back = IdempotencyConflict.from_details("m", error.details())
    assert (back.conflicts, back.accepted) == (error.conflicts, error.accepted)
    assert (
        IdempotencyConflict.from_details("m", {"conflicts": [{"x": 1}], "accepted": 3}).conflicts
        == ()
    )


# -- REST, gRPC and the SDK's remote clients ------------------------------------------------


def _operations() -> tuple[Platform, Guard, Operations]:
    platform = Platform.build(MEMORY, clock=ManualClock(start=NOW), local=True)
    guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1, burst=1, enabled=False)
    return platform, guard, Operations(platform, ServerSettings(auth=False))


async def test_rest_answers_409_with_the_items_and_the_sdk_raises_the_conflict():
    platform, guard, _ = _operations()
    app = create_app(platform, guard, ServerSettings(auth=False))
    remote = HttpRemote("http://atp", None)
    remote._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://atp")
    async with Client(remote) as client:
        first = await client.publish("a.b", 1, idempotency_key="k")
        answer = await remote._http.post(
            "/v1/tasks", json={"subject": "a.b", "payload": 2}, headers={"Idempotency-Key": "k"}
        )
        with pytest.raises(IdempotencyConflict, match=first.id) as caught:
            await client.publish("a.b", 2, idempotency_key="k")
    assert answer.status_code == 409
    body = answer.json()
    assert body["type"] == "urn:atp:problem:idempotency-conflict"
    assert body["conflicts"] == [{"index": 0, "task_id": first.id, "fields": ["payload"]}]
    assert caught.value.conflicts[0].task_id == first.id
    await platform.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_grpc_answers_already_exists_and_the_sdk_raises_the_conflict():
    platform, guard, operations = _operations()
    port = _free_port()
    server = GrpcServer(guard, operations, "127.0.0.1", port, 1 << 20)
    stop = asyncio.Event()
    serving = asyncio.create_task(server.run(stop))
    try:
        async with Client.connect(f"grpc://127.0.0.1:{port}") as client:
            first = await client.publish("a.b", 1, idempotency_key="k")
            with pytest.raises(IdempotencyConflict, match=first.id) as caught:
                await client.publish_many(
                    [client.request("a.b", 3), client.request("a.b", 2, idempotency_key="k")]
                )
    finally:
        stop.set()
        await serving
        await platform.close()
    assert [(c.index, c.task_id, c.fields) for c in caught.value.conflicts] == [
        (1, first.id, ("payload",))
    ]
    assert caught.value.accepted[1] is None
    assert caught.value.accepted[0]


# -- the command line ----------------------------------------------------------------------


def test_atp_publish_exits_4_naming_the_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATP_STORE", f"sqlite:///{tmp_path / 'atp.db'}")
    runner = CliRunner()
    args = ["publish", "a.b", "--idempotency-key", "k"]
    first = runner.invoke(cli, [*args, "1"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli, [*args, "2"], catch_exceptions=False)
    assert again.exit_code == 4, again.output
    assert f"belongs to task {first.stdout.strip()}, published with another payload" in again.stderr
