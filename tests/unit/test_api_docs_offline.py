"""Swagger UI at ``/docs`` works offline: every script, style and icon it loads is served
by atp itself, from the files shipped in the package (issue 14)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook, new_token
from atp.adapters.http import create_app
from atp.core.clock import ManualClock
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter

MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")
ABSOLUTE = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)
"""An address another host serves: ``http(s)://host`` or protocol-relative ``//host``."""


class References(HTMLParser):
    """The ``src`` and ``href`` of every tag of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, v) for k, v in attrs if k in ("src", "href") and v is not None]


def references(html: str) -> list[tuple[str, str]]:
    parser = References()
    parser.feed(html)
    return parser.found


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The app with authentication on: the API needs a token, the docs do not."""
    platform = Platform.build(
        MEMORY, plugins=make_plugin_manager(MEMORY), clock=ManualClock(), local=True
    )
    _, token = new_token("docs", ["read"])
    guard = Guard(TokenBook([token]), MemoryLimiter(platform.clock), rate=100, burst=100)
    app = create_app(platform, guard, ServerSettings(auth=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as client:
        yield client
    await platform.close()


async def test_docs_reference_nothing_outside_the_server(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    found = references(page.text)
    assert {tag for tag, _ in found} >= {"script", "link"}
    assert not [url for _, url in found if not url.startswith("/")], found
    assert not ABSOLUTE.findall(page.text)  # none in the inline script either


@pytest.mark.parametrize(
    ("tag", "kind", "least"),
    [("script", "javascript", 500_000), ("link", "text/css", 50_000)],
)
async def test_each_asset_of_the_docs_is_served(
    http: httpx.AsyncClient, tag: str, kind: str, least: int
) -> None:
    page = await http.get("/docs")
    (url,) = [url for found, url in references(page.text) if found == tag and "icon" not in url]
    asset = await http.get(url)
    assert asset.status_code == 200
    assert kind in asset.headers["content-type"]
    assert len(asset.content) > least


async def test_the_icon_is_served_and_the_api_still_needs_a_token(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    (icon,) = [url for _, url in references(page.text) if url.endswith(".png")]
    answer = await http.get(icon)
    assert (answer.status_code, answer.headers["content-type"]) == (200, "image/png")
    assert answer.content.startswith(b"\x89PNG")
    assert (await http.get("/openapi.json")).status_code == 200
    assert (await http.get("/v1/tasks")).status_code == 401


async def test_redoc_is_off_and_unknown_assets_are_not_found(http: httpx.AsyncClient) -> None:
    assert (await http.get("/redoc")).status_code == 404
    assert (await http.get("/docs/assets/nope.js")).status_code == 404
    assert (await http.get("/docs/assets/../_app.py")).status_code == 404
