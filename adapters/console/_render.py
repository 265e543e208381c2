"""Pages and fragments: the templates, what every page is given, and the console's route
class (errors as pages, a session that lapsed as the login page, the security headers)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from atp.adapters._api.operations import Operations
from atp.adapters.console._format import FILTERS
from atp.adapters.console._session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    LoginRequired,
    Viewer,
    check_csrf,
    viewer_of,
)
from atp.core.errors import AtpError
from atp.core.platform import Platform

__all__ = [
    "PREFIX",
    "Act",
    "ConsoleRoute",
    "Look",
    "base_url",
    "is_fragment",
    "operations",
    "platform",
    "render",
]

PREFIX = "/console"
TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
TEMPLATES.env.filters.update(FILTERS)
TEMPLATES.env.globals["quote"] = quote

# No inline script or style anywhere: every script and style sheet is a file of ours.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def base_url(request: Request) -> str:
    """The console's own path, behind whatever root path the server has."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + PREFIX


def operations(request: Request) -> Operations:
    ops: Operations = request.app.state.operations
    return ops


def platform(request: Request) -> Platform:
    return operations(request).platform


def is_fragment(request: Request) -> bool:
    """An htmx request for the live part of a page, not a whole page."""
    return request.headers.get("hx-request") == "true" and "hx-boosted" not in request.headers


async def _look(request: Request) -> Viewer:
    viewer = await viewer_of(request)
    request.state.viewer = viewer
    return viewer


async def _act(request: Request, viewer: Annotated[Viewer, Depends(_look)]) -> Viewer:
    """The viewer of an action, once its CSRF value and origin are checked."""
    sent = None
    if "form" in request.headers.get("content-type", ""):
        field = (await request.form()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    check_csrf(request, sent)
    return viewer


Look = Annotated[Viewer, Depends(_look)]
"""The viewer of a page: signed in, with ``read``."""
Act = Annotated[Viewer, Depends(_act)]
"""The viewer of an action (a POST): ``Look`` and the CSRF check. Scopes are checked by
Operations, as for the REST API."""


def render(
    request: Request,
    page: str,
    context: Mapping[str, Any],
    *,
    fragment: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The template ``page``, or ``fragment`` alone for an htmx request (a live update)."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    name = fragment if fragment is not None and is_fragment(request) else page
    values = {
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "base": base_url(request),
        "now": platform(request).clock.now(),
        "path": request.url.path,
        **context,
    }
    return TEMPLATES.TemplateResponse(request, name, values, status_code=status_code)


class ConsoleRoute(APIRoute):
    """Answers a lapsed session with the login page, an atp error or bad input with an
    error page (never JSON, never a traceback), and adds the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as exc:
                response = _to_login(request, exc.reason)
            except AtpError as exc:
                response = _error_page(request, exc.http_status, exc.message)
            except RequestValidationError as exc:
                response = _error_page(request, 400, _invalid(exc))
            return _finish(request, response)

        return route


def _to_login(request: Request, reason: str) -> Response:
    target = f"{base_url(request)}/login?next={quote(request.url.path)}"
    if reason:
        target += f"&reason={quote(reason)}"
    if is_fragment(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _error_page(request: Request, status: int, message: str) -> Response:
    context = {"status": status, "message": message}
    if is_fragment(request):
        # htmx swaps only 2xx answers: the error goes to the page's message area instead.
        response = render(request, "_error.html", context)
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "error.html", context, status_code=status)


def _invalid(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())[1:])
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "invalid input"


def _finish(request: Request, response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    fresh = getattr(request.state, "new_csrf", None)
    if fresh:
        response.set_cookie(
            CSRF_COOKIE,
            fresh,
            path=base_url(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response
