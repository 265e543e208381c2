"""The REST app in process (ASGI, memory backends): plugin mounts and the body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook
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
