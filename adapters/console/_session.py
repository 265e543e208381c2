"""Who is looking: a token kept in a cookie, and the CSRF check every action passes.

The token travels in an ``HttpOnly``, ``SameSite=Strict`` cookie, so a script cannot read
it and no other site's page sends it. Every form and htmx request also carries the CSRF
value of a second cookie (double submit), and a POST whose ``Origin`` names another host
is refused: without authentication (``atp dev`` on loopback) there is no session cookie,
and the CSRF cookie alone keeps other sites' pages from acting.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from atp.adapters._auth.guard import Guard, Principal
from atp.core.errors import PermissionDenied, Unauthenticated
from atp.core.subjects import matches

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "LoginRequired",
    "Viewer",
    "check_csrf",
    "csrf_of",
    "viewer_of",
]

SESSION_COOKIE = "atp_console"
CSRF_COOKIE = "atp_console_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """No valid session: the console answers with its login page."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Viewer:
    """The caller of one console request."""

    principal: Principal
    csrf: str
    """The value every form and htmx request of this session sends back."""
    auth: bool
    """Whether the console asks for a token (False: ``atp dev`` on loopback, or --no-auth)."""

    @property
    def name(self) -> str:
        return self.principal.id

    @property
    def admin(self) -> bool:
        """May requeue, purge, edit schedules, reset and the other admin actions."""
        return self.principal.scopes.admin

    def may_publish(self, subject: str) -> bool:
        """May cancel a task of ``subject`` (the REST API's rule: publish on it, or admin)."""
        scopes = self.principal.scopes
        return scopes.admin or any(matches(p, subject) for p in scopes.publish)

    def may_run(self, workflow: str, subjects: list[str]) -> bool:
        """May signal or cancel a run of ``workflow`` (the REST API's rule)."""
        try:
            self.principal.scopes.require_run(workflow, subjects)
        except PermissionDenied:
            return False
        return True


async def viewer_of(request: Request) -> Viewer:
    """The viewer of ``request``; LoginRequired without a valid session, PermissionDenied
    for a token without ``read``. Spends one request of the token's rate limit."""
    guard: Guard = request.app.state.guard
    csrf = csrf_of(request)
    if not guard.enabled:
        principal = await guard.admit(None)
        return Viewer(principal, csrf, auth=False)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired()
    try:
        principal = await guard.admit(f"Bearer {token}")
    except Unauthenticated as exc:
        raise LoginRequired(f"please sign in again: {exc.message}") from exc
    principal.scopes.require_read()
    return Viewer(principal, csrf, auth=True)


def csrf_of(request: Request) -> str:
    """This browser's CSRF value: its cookie's, or a new one the response will set."""
    known = request.cookies.get(CSRF_COOKIE, "")
    if len(known) == 43:  # token_urlsafe(32)
        return known
    fresh = secrets.token_urlsafe(32)
    request.state.new_csrf = fresh
    return fresh


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse (PermissionDenied) an action whose CSRF value is not this browser's, or whose
    ``Origin`` is another site's."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise PermissionDenied(f"a request from {origin!r} may not act on this console")
    known = request.cookies.get(CSRF_COOKIE, "")
    sent = sent or request.headers.get(CSRF_HEADER, "")
    if not known or not hmac.compare_digest(known.encode(), sent.encode()):
        raise PermissionDenied("the form is stale or came from elsewhere: reload the page")
