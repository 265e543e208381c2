"""The web console in process for tests: the FastAPI app over ASGI, memory backends, a
manual clock, and tokens (``admin``, ``read``, ``orders`` which may read and publish
``orders.>``, ``writer`` which may only publish, so cannot sign in). ``Console.post``
sends a form with this browser's CSRF value."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from atp.adapters._auth import Guard, ServerSettings, TokenBook, new_token
from atp.adapters.console._session import CSRF_COOKIE
from atp.adapters.http import create_app
from atp.core.clock import ManualClock
from atp.core.ids import id_time, new_id
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter

__all__ = ["MEMORY", "Console", "console"]

MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")
SCOPES = {
    "admin": ["admin"],
    "read": ["read"],
    "orders": ["read", "publish:orders.>"],
    "writer": ["publish:orders.>"],
}
_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    platform: Platform
    http: httpx.AsyncClient
    clock: ManualClock
    tokens: dict[str, str] = field(default_factory=dict)
    """Bearer text by token name."""

    async def login(self, name: str) -> httpx.Response:
        """Sign in as token ``name`` (the CSRF cookie first, from the login page)."""
        page = await self.http.get("/console/login")
        found = _CSRF_FIELD.search(page.text)
        csrf = found.group(1) if found else self.csrf()
        return await self.http.post(
            "/console/login", data={"token": self.tokens[name], "csrf": csrf, "next": ""}
        )

    async def past_every_id(self) -> None:
        """Move the clock past the last id this process made: ids never go back in time
        (``atp.core.ids``), so after a test on the real clock a manual clock behind it would
        stamp every id with that later time, and a time range would not find them."""
        last = id_time(new_id(self.clock.now()))
        if last >= self.clock.now():
            await self.clock.advance(last - self.clock.now() + 1)

    def csrf(self) -> str:
        """This client's CSRF cookie (get any console page first)."""
        return self.http.cookies.get(CSRF_COOKIE, "")

    async def post(self, path: str, data: Mapping[str, Any] | None = None) -> httpx.Response:
        """POST a form to ``path`` with the CSRF value, as a page's form does."""
        if not self.csrf():
            await self.http.get("/console/")
        return await self.http.post(path, data={**(data or {}), "csrf": self.csrf()})


@asynccontextmanager
async def console(
    *, auth: bool = True, settings: Settings = MEMORY, **server: Any
) -> AsyncIterator[Console]:
    """The console app over a fresh platform; with ``auth``, the three tokens exist."""
    clock = ManualClock()
    platform = Platform.build(settings, clock=clock, local=True)
    bearers, tokens = {}, []
    for name, scopes in SCOPES.items():
        bearer, token = new_token(name, scopes)
        bearers[name] = bearer
        tokens.append(token)
    limiter = MemoryLimiter(clock)
    guard = Guard(TokenBook(tokens), limiter, rate=1000, burst=1000, enabled=auth)
    app = create_app(platform, guard, ServerSettings(auth=auth, **server))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
            yield Console(platform, http, clock, bearers)
    finally:
        await platform.close()
