"""The FastAPI app ``atp server`` serves: ``/v1`` routes, health, and the plugins' mounts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from atp.adapters._api.operations import Operations
from atp.adapters._auth.config import ServerSettings
from atp.adapters._auth.guard import Guard
from atp.adapters.http._fleet import router as fleet_router
from atp.adapters.http._flow import router as flow_router
from atp.adapters.http._models import Health
from atp.adapters.http._openapi import server_openapi
from atp.adapters.http._problems import BodyLimit, install_handlers
from atp.adapters.http._routes import router
from atp.adapters.http._schedules import router as schedule_router
from atp.adapters.http._workflows import router as workflow_router
from atp.core.errors import AtpError, ConfigError
from atp.core.platform import Platform

__all__ = ["RESERVED", "create_app", "plugin_mounts"]

READY_TIMEOUT = 2.0
"""Seconds each backend has to answer a readiness probe."""
RESERVED = ("/v1", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/console")
PROBE_ID = "atp-readiness-probe"
DOCS = "/docs"
DOCS_ASSETS = "/docs/assets"
"""Where the Swagger UI files shipped in the package are served, open like ``/docs``."""
SWAGGER_UI = Path(__file__).with_name("static") / "swagger-ui"
"""swagger-ui-dist, vendored (its README names the version): ``/docs`` works offline."""


def create_app(
    platform: Platform, guard: Guard, server: ServerSettings, *, api: bool = True
) -> FastAPI:
    """Build the app over a platform the caller owns (and closes): the ``/v1`` API, its
    documents and the plugins' mounts unless ``api`` is False, the console when
    ``server.console``, health always."""

    app = FastAPI(
        title="atp",
        version="1",
        description="Async Task Platform: publish, inspect, cancel and requeue tasks; cron "
        "schedules; workflows; flow control (limits and pauses); the fleet (workers, breakers).",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: see _docs
        redoc_url=None,
    )
    app.state.operations = Operations(platform, server)
    app.state.guard = guard
    install_handlers(app)
    _health(app, platform)
    if api:
        _api(app, platform)
    if server.console:
        from atp.adapters.console import install_console

        install_console(app)
    app.add_middleware(BodyLimit, limit=server.max_body)
    app.openapi = server_openapi(app, server, platform)  # type: ignore[method-assign]
    return app


def _api(app: FastAPI, platform: Platform) -> None:
    for api_router in (router, schedule_router, workflow_router, flow_router, fleet_router):
        app.include_router(api_router)
    _docs(app)
    for path, mounted in plugin_mounts(platform):
        _mount(app, path.rstrip("/") or "/", mounted)


def _mount(app: FastAPI, path: str, mounted: Any) -> None:
    """Serve ``mounted`` at ``path`` itself (no redirect to ``path/``) and below it."""
    app.router.routes.append(Route(path, _Asgi(mounted), include_in_schema=False))
    app.mount(path, mounted)


class _Asgi:
    """Makes Starlette treat a plain ASGI callable as an app, not a request handler."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs``, its script, style and icon served from the package."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + DOCS_ASSETS
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            # Off: the online validator is a call to swagger.io for every page view.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_route(DOCS, swagger_ui, include_in_schema=False)


def plugin_mounts(platform: Platform) -> list[tuple[str, object]]:
    """The ``(path, ASGI app)`` pairs plugins contribute; ConfigError on a clash."""
    found: list[tuple[str, object]] = []
    for batch in platform.plugins.hook.atp_http_mounts(settings=platform.settings):
        found.extend(batch)
    paths: set[str] = set()
    for path, _ in found:
        if not path.startswith("/") or path.rstrip("/") in paths:
            raise ConfigError(f"HTTP mount {path!r} is malformed or claimed twice")
        if any(path == r or path.startswith(r + "/") for r in RESERVED):
            raise ConfigError(f"HTTP mount {path!r} clashes with atp server's own API")
        paths.add(path.rstrip("/"))
    return found


def _health(app: FastAPI, platform: Platform) -> None:
    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """The process is up (no backend is asked)."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["health"],
        responses={503: {"model": Health, "description": "A backend did not answer"}},
    )
    async def readyz() -> Any:
        """Every backend answers: the store and the coordinator are each asked once."""
        probes = {
            "store": lambda: platform.store.get([PROBE_ID]),
            "coordinator": lambda: platform.coordinator.holder(PROBE_ID),
        }
        checks = {name: await _probe(probe) for name, probe in probes.items()}
        ready = all(result == "ok" for result in checks.values())
        body = Health(status="ok" if ready else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


async def _probe(call: Callable[[], Awaitable[object]]) -> str:
    try:
        await asyncio.wait_for(call(), READY_TIMEOUT)
    except (AtpError, TimeoutError) as exc:
        return f"unavailable: {exc}"
    return "ok"
