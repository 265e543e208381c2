"""The guard both APIs share: who is calling (bearer token), and whether they are over rate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from atp.adapters._auth.config import ServerSettings
from atp.adapters._auth.scopes import ALL, Scopes
from atp.adapters._auth.tokens import TokenBook
from atp.core.errors import ConfigError, RateLimited, Unauthenticated
from atp.core.platform import Platform
from atp.core.ports import Limiter
from atp.core.urls import mask

__all__ = ["Guard", "Principal", "build_guard", "default_limiter"]

log = logging.getLogger("atp.server")

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: a token's id and scopes (``anonymous`` without auth)."""

    id: str
    scopes: Scopes


class Guard:
    """Authenticates a bearer token and spends one request of its rate limit.

    With ``enabled=False`` every caller is an anonymous admin and nothing is limited.
    """

    def __init__(
        self, book: TokenBook, limiter: Limiter, *, rate: float, burst: int, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self._book = book
        self._limiter = limiter
        self._rate = rate
        self._burst = burst

    async def admit(self, authorization: str | None) -> Principal:
        """Return the caller of a request with this ``Authorization`` value.

        Raises Unauthenticated without a valid ``Bearer`` token and RateLimited (with
        ``retry_after``) when the token's bucket is empty; nothing is changed either way.
        """
        if not self.enabled:
            return Principal(ANONYMOUS, ALL)
        scheme, _, bearer = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise Unauthenticated("send 'Authorization: Bearer <token>'")
        token = self._book.verify(bearer.strip())
        rate = token.rate or self._rate
        wait = await self._limiter.acquire(
            f"token:{token.id}", rate=rate, burst=token.burst or self._burst
        )
        if wait > 0:
            raise RateLimited(f"token {token.id!r} is over its rate of {rate:g}/s", wait)
        return Principal(token.id, token.scopes)

    async def close(self) -> None:
        await self._limiter.close()


def build_guard(platform: Platform, server: ServerSettings) -> Guard:
    """The guard for ``server``: its tokens and a limiter from the plugins. No I/O.

    Without a ``limiter`` URL: beside a SQLite store, a file of its own next to the
    store's (shared by every server on the store, without contending for its write
    lock); else the store's URL where a plugin serves a limiter there (Redis); else the
    coordinator's URL where one serves it there (etcd, ADR 0042); else ``memory://``,
    with a warning: limits then hold per process. Raises ConfigError for auth without
    tokens or a limiter URL no plugin serves.
    """
    book = server.token_book()
    if server.auth and not len(book):
        raise ConfigError(
            "atp server needs tokens: set [atp.server] tokens_file (see `atp token create`), "
            "or pass --no-auth to serve without authentication"
        )
    limiter = _limiter(platform, server.limiter)
    return Guard(book, limiter, rate=server.rate, burst=server.burst, enabled=server.auth)


def _limiter(platform: Platform, configured: str) -> Limiter:
    """The limiter of ``build_guard``: at ``configured``, else the first a plugin serves of
    the store's default, the coordinator's URL and ``memory://``."""
    url = configured or default_limiter(platform.settings.store)
    make = platform.plugins.hook.atp_make_limiter
    limiter = make(url=url, settings=platform.settings, clock=platform.clock)
    if limiter is None and configured:
        raise ConfigError(f"no plugin serves a rate limiter for {mask(url)!r}")
    coordinator = platform.settings.coordinator_url
    if limiter is None and coordinator != url:
        limiter = make(url=coordinator, settings=platform.settings, clock=platform.clock)
    if limiter is None:
        log.warning(
            "no shared rate limiter for store %r or coordinator %r: limits hold per server process",
            mask(url),
            mask(coordinator),
        )
        limiter = make(url="memory://", settings=platform.settings, clock=platform.clock)
    return cast(Limiter, limiter)


def default_limiter(store: str) -> str:
    """The limiter URL for a store URL: ``sqlite:///atp.db`` -> a sibling file
    ``sqlite:///atp.db-limits`` (no fsync per bucket: losing the last refills on a power
    cut is harmless); any other store: its own URL."""
    base = store.partition("?")[0]
    if base.startswith("sqlite://") and not base.endswith(":memory:"):
        return f"{base}-limits?synchronous=normal"
    return store
