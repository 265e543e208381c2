"""The REST app in process (ASGI, memory backends): plugin mounts, the body limit, huge
batches refused before validation, 405 Allow, and the OpenAPI document's limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook, new_token
from atp.adapters.http import create_app
from atp.core.clock import ManualClock
from atp.core.errors import ConfigError
from atp.core.platform import Platform
from atp.core.plugins import hookimpl, make_plugin_manager
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter

MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")


async def hello(scope, receive, send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


class Mounts:
    def __init__(self, *paths: str) -> None:
        self.paths = paths

    @hookimpl
    def atp_http_mounts(self, settings: Settings) -> Sequence[tuple[str, object]]:
        return [(path, hello) for path in self.paths]


def build(*paths: str, max_body: int = 1000) -> tuple[Platform, object]:
    plugins = make_plugin_manager(MEMORY)
    plugins.register(Mounts(*paths))
    platform = Platform.build(MEMORY, plugins=plugins, clock=ManualClock(), local=True)
    guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1, burst=1, enabled=False)
    return platform, create_app(platform, guard, ServerSettings(auth=False, max_body=max_body))


async def test_plugin_mounts_are_served_beside_the_api():
    platform, app = build("/extra")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        assert (await http.get("/extra")).text == "hello"
        assert (await http.get("/extra/below")).text == "hello"
        assert (await http.get("/healthz")).status_code == 200
    await platform.close()


@pytest.mark.parametrize("paths", [("/v1",), ("/healthz",), ("/x", "/x"), ("nope",)])
async def test_a_mount_that_clashes_is_refused(paths):
    with pytest.raises(ConfigError):
        build(*paths)


async def test_a_chunked_body_over_the_limit_is_refused():
    platform, app = build(max_body=100)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b'{"subject": "a", "payload": "' + b"x" * 50 + b'"}'

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        response = await http.post(
            "/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["type"] == "urn:atp:problem:payload-too-large"
    assert (await platform.store.counts()) == {}
    await platform.close()


async def test_readyz_is_503_when_the_store_does_not_answer(tmp_path):
    settings = MEMORY.replace(store=f"sqlite:///{tmp_path}/missing/atp.db")
    platform = Platform.build(settings, clock=ManualClock(), local=True)
    guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1, burst=1, enabled=False)
    app = create_app(platform, guard, ServerSettings(auth=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        response = await http.get("/readyz")
        alive = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["store"].startswith("unavailable")
    assert response.json()["checks"]["coordinator"] == "ok"
    assert alive.status_code == 200
    await platform.close()


# -- batches, 405 and the OpenAPI document -------------------------------------------------


def authenticated(**server: int) -> tuple[Platform, object, dict[str, dict[str, str]]]:
    """An app with a reader, a publisher of ``orders.*`` and an admin; their headers."""
    platform = Platform.build(MEMORY, clock=ManualClock(), local=True)
    made = {name: new_token(name, scopes) for name, scopes in TOKENS.items()}
    book = TokenBook(token for _, token in made.values())
    guard = Guard(book, MemoryLimiter(platform.clock), rate=1000, burst=1000)
    app = create_app(platform, guard, ServerSettings(**server))  # type: ignore[arg-type]
    headers = {name: {"Authorization": f"Bearer {text}"} for name, (text, _) in made.items()}
    return platform, app, headers


TOKENS = {"reader": ["read"], "publisher": ["publish:orders.*"], "admin": ["admin"]}
BAD_ITEM = {"subject": "orders.close", "priority": "high"}  # invalid past its subject


@pytest.mark.parametrize("token", ["reader", "publisher", "admin"])
async def test_a_huge_batch_is_refused_before_any_task_is_validated(token):
    platform, app, headers = authenticated()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        body = {"tasks": [BAD_ITEM] * 100_000}
        response = await http.post("/v1/tasks/batch", json=body, headers=headers[token])
    problem = response.json()
    assert (response.status_code, problem["type"]) == (400, "urn:atp:problem:invalid-input")
    assert problem["detail"] == "a batch holds at most 1000 tasks, got 100000"
    assert "errors" not in problem  # no item was validated
    assert (await platform.store.counts()) == {}
    await platform.close()


async def test_a_batch_beyond_the_tokens_subjects_is_403_before_its_tasks_are_validated():
    platform, app, headers = authenticated()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        bad = {"tasks": [BAD_ITEM, BAD_ITEM]}
        denied = await http.post("/v1/tasks/batch", json=bad, headers=headers["reader"])
        invalid = await http.post("/v1/tasks/batch", json=bad, headers=headers["publisher"])
        good = {"tasks": [{"subject": "orders.close"}, {"subject": "orders.open"}]}
        published = await http.post("/v1/tasks/batch", json=good, headers=headers["publisher"])
        broken = await http.post("/v1/tasks/batch", content=b"{", headers=headers["admin"])
    assert denied.json()["type"] == "urn:atp:problem:permission-denied"
    assert invalid.status_code == 400
    assert [e["loc"] for e in invalid.json()["errors"]] == [
        ["body", "tasks", "0", "priority"],
        ["body", "tasks", "1", "priority"],
    ]
    assert published.status_code == 200, published.text
    assert len(published.json()["tasks"]) == 2
    assert broken.json()["type"] == "urn:atp:problem:invalid-input"
    assert sum((await platform.store.counts()).values()) == 2
    await platform.close()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/tasks", "GET, POST"),
        ("PATCH", "/v1/tasks/abc", "GET, DELETE"),
        ("PUT", "/v1/runs/abc", "GET, DELETE"),
        ("GET", "/v1/tasks/batch", None),  # GET /v1/tasks/{task_id} serves it
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/schedules/x/pause", "POST"),
        ("PUT", "/v1/schedules/x", "GET, DELETE"),
    ],
)
async def test_a_405_lists_every_method_the_path_allows(method, path, allow):
    platform, app = build()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        response = await http.request(method, path)
    if allow is None:
        assert response.status_code != 405
    else:
        assert (response.status_code, response.headers["allow"]) == (405, allow)
        assert response.json()["type"] == "urn:atp:problem:method-not-allowed"
    await platform.close()


def test_the_openapi_document_states_this_servers_limits():
    platform, app = build()
    app = create_app(platform, app.state.guard, ServerSettings(max_batch=50, max_page=20))  # type: ignore[attr-defined]
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert schemas["BatchIn"]["properties"]["tasks"]["maxItems"] == 50
    [ids] = [b for b in schemas["PurgeIn"]["properties"]["ids"]["anyOf"] if "items" in b]
    assert ids["maxItems"] == 50
    body = document["paths"]["/v1/tasks/batch"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchIn"}
    limits = [
        p["schema"]["maximum"]
        for path in ("/v1/tasks", "/v1/dead-letters", "/v1/runs")
        for p in document["paths"][path]["get"]["parameters"]
        if p["name"] == "limit"
    ]
    assert limits == [20, 20, 20]
    statuses = {
        s for ops in document["paths"].values() for op in ops.values() for s in op["responses"]
    }
    assert "422" not in statuses


async def test_a_batch_is_authenticated_before_its_body_is_read_and_healthz_still_answers():
    platform, app, headers = authenticated()
    finish = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"tasks": [{"subject": "orders.close"}'
        await finish.wait()  # the rest of the body comes only when the test says
        yield b"]}"

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    json_type = {"content-type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        anonymous = await http.post("/v1/tasks/batch", content=body(), headers=json_type)
        assert anonymous.status_code == 401  # answered with the body still unsent
        pending = asyncio.create_task(
            http.post("/v1/tasks/batch", content=body(), headers={**json_type, **headers["admin"]})
        )
        assert (await http.get("/healthz")).status_code == 200
        assert not pending.done()
        finish.set()
        published = await pending
    assert published.status_code == 200, published.text
    assert sum((await platform.store.counts()).values()) == 1
    await platform.close()


@pytest.mark.parametrize("integer", [2**64, -(2**63) - 1])
async def test_a_payload_integer_beyond_64_bits_is_refused_and_nothing_is_stored(integer):
    platform, app = build(max_body=10_000)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    body = {"tasks": [{"subject": "ok.one"}, {"subject": "big.int", "payload": {"n": [integer]}}]}
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        answer = await http.post("/v1/tasks/batch", json=body)
        listed = (await http.get("/v1/tasks")).json()
    await platform.close()
    assert answer.status_code == 400
    assert "64-bit" in answer.json()["detail"]
    assert listed["items"] == [], listed
