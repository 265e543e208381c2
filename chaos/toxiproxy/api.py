"""Toxiproxy's HTTP API over a Registry: same paths, bodies, status codes and error shape."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaos.toxiproxy.proxy import ProxyError, Registry

__all__ = ["VERSION", "make_app"]

VERSION = "2.9.0-atp"
"""The toxiproxy API version this server follows, marked as ours."""

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _api(handler: Handler) -> Handler:
    """Refuse browsers as toxiproxy does, and turn ProxyError into its error body."""

    async def wrapped(request: Request) -> Response:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return _error(403, "requests from browsers are not allowed")
        try:
            return await handler(request)
        except ProxyError as exc:
            return _error(exc.status, str(exc))

    return wrapped


async def _body(request: Request, kind: type = dict) -> Any:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ProxyError(400, "bad request body") from None
    if not isinstance(body, kind):
        raise ProxyError(400, "bad request body")
    return body


def make_app(registry: Registry | None = None) -> Starlette:
    """Build the API app; proxies stop when the app shuts down."""
    reg = registry or Registry()

    async def list_proxies(request: Request) -> Response:
        return JSONResponse({name: p.as_json() for name, p in reg.proxies.items()})

    async def create_proxy(request: Request) -> Response:
        return JSONResponse((await reg.create(await _body(request))).as_json(), 201)

    async def populate(request: Request) -> Response:
        proxies = await reg.populate(await _body(request, list))
        return JSONResponse({"proxies": [p.as_json() for p in proxies]}, 201)

    async def get_proxy(request: Request) -> Response:
        return JSONResponse(reg.get(request.path_params["proxy"]).as_json())

    async def update_proxy(request: Request) -> Response:
        proxy = await reg.update(request.path_params["proxy"], await _body(request))
        return JSONResponse(proxy.as_json())

    async def delete_proxy(request: Request) -> Response:
        await reg.delete(request.path_params["proxy"])
        return Response(status_code=204)

    async def list_toxics(request: Request) -> Response:
        proxy = reg.get(request.path_params["proxy"])
        return JSONResponse([t.as_json() for t in proxy.toxics.values()])

    async def add_toxic(request: Request) -> Response:
        toxic = reg.add_toxic(request.path_params["proxy"], await _body(request))
        return JSONResponse(toxic.as_json())

    async def get_toxic(request: Request) -> Response:
        params = request.path_params
        return JSONResponse(reg.get_toxic(params["proxy"], params["toxic"]).as_json())

    async def update_toxic(request: Request) -> Response:
        params = request.path_params
        toxic = reg.update_toxic(params["proxy"], params["toxic"], await _body(request))
        return JSONResponse(toxic.as_json())

    async def remove_toxic(request: Request) -> Response:
        reg.remove_toxic(request.path_params["proxy"], request.path_params["toxic"])
        return Response(status_code=204)

    async def reset(request: Request) -> Response:
        await reg.reset()
        return Response(status_code=204)

    async def version(request: Request) -> Response:
        return JSONResponse({"version": VERSION})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await reg.close()

    routes = [
        Route("/proxies", _api(list_proxies), methods=["GET"]),
        Route("/proxies", _api(create_proxy), methods=["POST"]),
        Route("/populate", _api(populate), methods=["POST"]),
        Route("/proxies/{proxy}", _api(get_proxy), methods=["GET"]),
        Route("/proxies/{proxy}", _api(update_proxy), methods=["POST", "PATCH"]),
        Route("/proxies/{proxy}", _api(delete_proxy), methods=["DELETE"]),
        Route("/proxies/{proxy}/toxics", _api(list_toxics), methods=["GET"]),
        Route("/proxies/{proxy}/toxics", _api(add_toxic), methods=["POST"]),
        Route("/proxies/{proxy}/toxics/{toxic}", _api(get_toxic), methods=["GET"]),
        Route("/proxies/{proxy}/toxics/{toxic}", _api(update_toxic), methods=["POST", "PATCH"]),
        Route("/proxies/{proxy}/toxics/{toxic}", _api(remove_toxic), methods=["DELETE"]),
        Route("/reset", _api(reset), methods=["POST"]),
        Route("/version", _api(version), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.registry = reg
    return app
