"""Sign in with a token, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from atp.adapters._auth.guard import Guard
from atp.adapters.console._render import ConsoleRoute, base_url, render
from atp.adapters.console._session import SESSION_COOKIE, check_csrf, csrf_of
from atp.core.errors import PermissionDenied, Unauthenticated

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/login")
async def login_page(request: Request, next: str = "", reason: str = "") -> Response:
    """The sign-in form; straight on where the console asks for no token."""
    guard: Guard = request.app.state.guard
    if not guard.enabled:
        return RedirectResponse(_next(request, next), status_code=303)
    context = {"next": next, "message": reason, "csrf": csrf_of(request)}
    return render(request, "login.html", context)


@router.post("/login")
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=512)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    """Check the token (it must hold ``read`` or ``admin``), keep it in the session cookie."""
    check_csrf(request, csrf)
    guard: Guard = request.app.state.guard
    try:
        principal = await guard.admit(f"Bearer {token.strip()}")
        principal.scopes.require_read()
    except (Unauthenticated, PermissionDenied) as exc:
        context = {"next": next, "message": exc.message, "csrf": csrf_of(request)}
        return render(request, "login.html", context, status_code=exc.http_status)
    response = RedirectResponse(_next(request, next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        path=base_url(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
    check_csrf(request, csrf)
    response = RedirectResponse(f"{base_url(request)}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=base_url(request))
    return response


def _next(request: Request, target: str) -> str:
    """Where to go after signing in: a console page, never another site."""
    base = base_url(request)
    if target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"
