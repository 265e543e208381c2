"""Errors as RFC 9457 problem documents, and the request body limit.

Each ``atp.core.errors`` class has a stable ``type``: ``urn:atp:problem:<slug>``, with
the status the class maps to. A 429 carries ``Retry-After``, a 401 ``WWW-Authenticate``,
an idempotency conflict its ``conflicts`` and ``accepted`` items.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atp.core.errors import (
    AtpError,
    IdempotencyConflict,
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
)
from atp.sdk.wire.problems import PROBLEM_TYPE, retry_after

__all__ = ["PROBLEM_TYPE", "BodyLimit", "install_handlers", "problem_response"]

log = logging.getLogger("atp.http")

MEDIA_TYPE = "application/problem+json"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}


def problem_response(
    status: int, slug: str, detail: str, instance: str, **extra: Any
) -> JSONResponse:
    """A problem document response."""
    body = {
        "type": PROBLEM_TYPE + slug,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def error_response(exc: AtpError, instance: str) -> JSONResponse:
    """The problem document for an atp error, with the headers its status calls for."""
    extra = exc.details() if isinstance(exc, IdempotencyConflict) else {}
    response = problem_response(exc.http_status, exc.type_slug, exc.message, instance, **extra)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = retry_after(exc)
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="atp"'
    return response


def install_handlers(app: FastAPI) -> None:
    """Answer every error with a problem document; never leak a traceback."""

    @app.exception_handler(AtpError)
    async def atp_error(request: Request, exc: AtpError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg"))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(
            400,
            InvalidInput.type_slug,
            detail or "invalid request",
            request.url.path,
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "error")
        response = problem_response(exc.status_code, slug, str(exc.detail), request.url.path)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the first route of the path only
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem_response(
            500, "internal", "internal error; see the server log", request.url.path
        )


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app serves at the request's path."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with a 413 problem, before it is read
    whole: by its Content-Length, or once a chunked body grows past the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen, refused = 0, False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not refused:
                refused = True  # answer now; the app sees the client go away
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded)

    def _detail(self) -> str:
        return f"request body is over the limit of {self.limit} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, PayloadTooLarge.type_slug, self._detail(), scope["path"])
        await response(scope, receive, send)
