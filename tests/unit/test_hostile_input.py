"""Hostile input refused once, in the core, whichever way it comes in (ADR 0027): retry
policies with NaN, infinite or negative numbers, non-finite numbers in payloads and
results, and error messages that would echo a whole oversized input."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook
from atp.adapters.http import create_app
from atp.core import codec
from atp.core.clock import ManualClock
from atp.core.errors import InvalidInput, NotFound
from atp.core.model import RetryPolicy, State
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.quoting import MAX_QUOTE, quote
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk import App, SyncClient
from atp.sdk.testing import TestPlatform
from atp.sdk.wire import tasks as grpc
from atp.sdk.wire.pb import tasks_pb2 as pb

NAN, INF = math.nan, math.inf
BAD_RETRIES: list[dict[str, Any]] = [
    {"base": NAN},
    {"base": INF},
    {"base": -1.0},
    {"cap": NAN},
    {"cap": -INF},
    {"cap": -5.0},
    {"factor": NAN},
    {"factor": INF},
    {"factor": 0.5},
]
MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")


# -- retry policies ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_RETRIES)
def test_a_retry_policy_with_a_bad_number_cannot_be_built(bad: dict[str, Any]):
    (name,) = bad
    with pytest.raises(InvalidInput, match=f"retry {name} must be a finite number"):
        RetryPolicy(**bad)


@pytest.mark.parametrize("bad", [{"base": "1"}, {"cap": True}, {"jitter": 1}, {"jitter": None}])
def test_a_retry_policy_of_the_wrong_types_cannot_be_built(bad: dict[str, object]):
    with pytest.raises(InvalidInput, match="retry"):
        RetryPolicy(**bad)  # type: ignore[arg-type]


def test_the_edges_of_a_retry_policy_are_accepted():
    assert RetryPolicy(base=0, factor=1, cap=0, jitter=False).ceiling(3) == 0
    assert RetryPolicy(factor=100).ceiling(2) == 100


@pytest.mark.parametrize("bad", BAD_RETRIES[:3])
async def test_the_sdk_refuses_a_bad_retry_and_stores_nothing(bad: dict[str, Any]):
    async with TestPlatform(App()) as tp:
        with pytest.raises(InvalidInput, match="retry"):
            await tp.client.publish("a.b", retry=RetryPolicy(**bad))
        assert await tp.client.counts() == {}


async def test_the_core_refuses_a_retry_that_is_not_a_policy():
    async with TestPlatform(App()) as tp:
        service = TaskService(tp.platform)
        for bad in ({"base": NAN}, "fast", 1.0):
            with pytest.raises(InvalidInput, match="retry must be a RetryPolicy"):
                await service.publish([PublishRequest("a.b", retry=bad)])  # type: ignore[arg-type]
        assert await tp.client.counts() == {}


def test_the_sync_client_refuses_a_bad_retry():
    with SyncClient.connect(settings=MEMORY) as client:
        with pytest.raises(InvalidInput, match="retry must be a RetryPolicy"):
            client.publish("a.b", retry={"base": NAN})  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="retry factor"):
            client.publish("a.b", retry=RetryPolicy(factor=INF))
        assert client.counts() == {}


@pytest.mark.parametrize("bad", BAD_RETRIES)
def test_a_grpc_publish_with_a_bad_retry_is_refused(bad: dict[str, Any]):
    fields = {"base": 1.0, "factor": 2.0, "cap": 300.0, "jitter": True, **bad}
    message = pb.PublishRequest(subject="a.b", retry=pb.RetryPolicy(**fields))
    with pytest.raises(InvalidInput, match="retry"):
        grpc.request_in(message, None)


@pytest.fixture
async def rest() -> AsyncIterator[httpx.AsyncClient]:
    platform = Platform.build(MEMORY, plugins=make_plugin_manager(MEMORY), clock=ManualClock())
    guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1, burst=1, enabled=False)
    app = create_app(platform, guard, ServerSettings(auth=False, max_body=1_000_000))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        yield http
    await platform.close()


async def _post(http: httpx.AsyncClient, body: str) -> httpx.Response:
    return await http.post("/v1/tasks", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "retry", ['{"base": NaN}', '{"cap": Infinity}', '{"base": -1}', '{"factor": 1e400}']
)
async def test_a_rest_publish_with_a_bad_retry_is_refused(rest: httpx.AsyncClient, retry: str):
    response = await _post(rest, f'{{"subject": "a.b", "retry": {retry}}}')
    assert response.status_code in (400, 422), response.text
    assert (await rest.get("/v1/tasks")).json()["items"] == []


# -- non-finite numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (NAN, "$"),
        ({"a": [1, 2.5, INF]}, "$.a[2]"),
        ({"x": {"y y": -INF}}, "$.x['y y']"),
        ([None, {"v": NAN}], "$[1].v"),
        ((1, (2, NAN)), "$[1][1]"),
    ],
)
def test_dumps_refuses_a_non_finite_number_naming_where(value: object, path: str):
    with pytest.raises(InvalidInput) as caught:
        codec.dumps(value, "payload")
    assert caught.value.message == (
        f"payload holds a non-finite number (NaN or infinity) at {path}"
    )


def test_dumps_keeps_nulls_and_finite_numbers():
    value = {"a": None, "b": [1.5, -0.0, 1e308], "null": "null"}
    assert codec.loads(codec.dumps(value)) == value


async def test_the_sdk_refuses_a_payload_with_nan_and_stores_nothing():
    async with TestPlatform(App()) as tp:
        with pytest.raises(InvalidInput, match=r"payload holds a non-finite number .* at \$\.v"):
            await tp.client.publish("a.b", {"v": NAN})
        assert await tp.client.counts() == {}


@pytest.mark.parametrize("payload", ['{"v": NaN}', '{"v": [Infinity]}', '{"v": -1e400}'])
async def test_a_rest_payload_with_a_non_finite_number_is_refused(
    rest: httpx.AsyncClient, payload: str
):
    response = await _post(rest, f'{{"subject": "a.b", "payload": {payload}}}')
    assert response.status_code == 400, response.text
    assert "non-finite" in response.text
    assert (await rest.get("/v1/tasks")).json()["items"] == []


def test_a_grpc_payload_with_an_infinity_is_refused():
    message = pb.PublishRequest(subject="a.b", payload=b'{"v": 1e400}')
    with pytest.raises(InvalidInput, match="payload is not valid JSON"):
        grpc.request_in(message, None)


async def test_a_handler_result_with_nan_is_dead_as_unserialisable():
    app = App()

    @app.task("ratio", max_attempts=3)
    async def ratio() -> dict[str, float]:
        return {"r": NAN}

    async with TestPlatform(app) as tp:
        record = await tp.wait((await tp.client.publish("ratio")).id)
    assert record.state is State.DEAD
    assert record.task.attempt == 1
    assert record.errors[-1].kind == "unserialisable"
    assert "non-finite number (NaN or infinity) at $.r" in record.errors[-1].message


# -- bounded echoes --------------------------------------------------------------------------


def test_quote_cuts_long_values_and_keeps_short_ones():
    assert quote("abc") == "'abc'"
    long = quote("x" * 1_000_000)
    assert len(long) <= MAX_QUOTE + 2
    assert "..." in long
    assert len(quote(list(range(100_000)))) < 100


@pytest.mark.parametrize(
    "request_",
    [
        PublishRequest("a." + "b" * 1_000_000),
        PublishRequest("a.b", idempotency_key="k" * 1_000_000),
        PublishRequest("a.b", headers="h" * 1_000_000),  # type: ignore[arg-type]
        PublishRequest("a.b", timeout="t" * 1_000_000),  # type: ignore[arg-type]
        PublishRequest("a.b", retry=["r"] * 1_000_000),  # type: ignore[arg-type]
    ],
)
async def test_refusals_quote_a_huge_input_briefly(request_: PublishRequest):
    async with TestPlatform(App()) as tp:
        with pytest.raises(InvalidInput) as caught:
            await TaskService(tp.platform).publish([request_])
    assert len(caught.value.message) < 300


async def test_an_unknown_huge_id_is_quoted_briefly():
    async with TestPlatform(App()) as tp:
        with pytest.raises(NotFound) as caught:
            await tp.client.get("x" * 1_000_000)
    assert len(caught.value.message) < 300


def test_decoding_quotes_a_huge_bad_envelope_briefly():
    with pytest.raises(InvalidInput) as caught:
        codec.decode_task(codec.dumps({"id": "x" * 1_000_000, "subject": 5}))
    assert len(caught.value.message) < 300
