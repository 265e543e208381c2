"""Serving the metrics: an ASGI app for ``atp server``, a small asyncio server elsewhere.

Both answer only a caller with the bearer token when ``[atp.prometheus] token`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["MetricsApp", "MetricsServer"]

log = logging.getLogger("atp.plugins.prometheus")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Refresh = Callable[[], Awaitable[None]]

REQUEST_TIMEOUT = 10.0
MAX_REQUEST = 8192
UNAUTHORIZED = b"unauthorized: send Authorization: Bearer <[atp.prometheus] token>\n"
CHALLENGE = (b"www-authenticate", b'Bearer realm="atp metrics"')


def authorized(header: bytes | None, token: str | None) -> bool:
    """Whether an Authorization header carries ``token`` (always, when there is none);
    compared in constant time."""
    if token is None:
        return True
    scheme, _, credentials = (header or b"").strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials, token.encode())


async def exposition(registry: CollectorRegistry, refresh: Refresh) -> bytes:
    """The text exposition of ``registry``, after ``refresh`` updated what it caches."""
    await refresh()
    return generate_latest(registry)


class MetricsApp:
    """An ASGI app answering GET (and HEAD) with the registry's exposition; 405 otherwise,
    401 without ``token`` when one is set.

    Mounted at ``/metrics`` by ``atp server``: every path under its mount serves it.
    """

    def __init__(
        self, registry: CollectorRegistry, refresh: Refresh, token: str | None = None
    ) -> None:
        self._registry = registry
        self._refresh = refresh
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        header = dict(scope.get("headers", ())).get(b"authorization")
        if not authorized(header, self._token):
            await _respond(send, 401, UNAUTHORIZED, "text/plain", [CHALLENGE])
            return
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain", [(b"allow", b"GET")])
            return
        body = await exposition(self._registry, self._refresh)
        await _respond(send, 200, b"" if method == "HEAD" else body, CONTENT_TYPE_LATEST)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MetricsServer:
    """``GET /metrics`` on a port of this process's own, served on its event loop.

    ``bind()`` takes the port at once, so a port already in use is an error at start-up;
    ``start()`` then serves from a task of its own. Anything but ``GET /metrics`` gets a
    404 or 405, and a request without ``token`` (when one is set) a 401; one request per
    connection.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        refresh: Refresh,
        host: str,
        port: int,
        token: str | None = None,
    ):
        self._registry = registry
        self._refresh = refresh
        self._host = host
        self._port = port
        self._token = token
        self._socket: socket.socket | None = None
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port bound (the OS's choice when configured as 0 in tests)."""
        return self._socket.getsockname()[1] if self._socket else self._port

    def bind(self) -> None:
        """Take the port; OSError if it is in use."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._socket = sock

    async def start(self) -> None:
        """Serve on the bound socket until ``close``."""
        if self._socket is None:
            self.bind()
        self._server = await asyncio.start_server(self._handle, sock=self._socket)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        elif self._socket is not None:
            self._socket.close()
        self._server = self._socket = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            await self._answer(writer, head[:MAX_REQUEST].split(b"\r\n"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, writer: asyncio.StreamWriter, lines: list[bytes]) -> None:
        method, _, rest = lines[0].partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        extra = b""
        if path != b"/metrics":
            status, body, kind = b"404 Not Found", b"not found: try /metrics\n", "text/plain"
        elif not authorized(_header(lines, b"authorization"), self._token):
            status, body, kind = b"401 Unauthorized", UNAUTHORIZED, "text/plain"
            extra = b"\r\n" + b": ".join(CHALLENGE)
        elif method not in (b"GET", b"HEAD"):
            status, body, kind = b"405 Method Not Allowed", b"method not allowed\n", "text/plain"
        else:
            status, kind = b"200 OK", CONTENT_TYPE_LATEST
            body = await exposition(self._registry, self._refresh)
        head = (
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: "
            + kind.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + extra
            + b"\r\nConnection: close\r\n\r\n"
        )
        writer.write(head + (b"" if method == b"HEAD" else body))
        await writer.drain()


def _header(lines: list[bytes], name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) among a request's lines, if present."""
    for line in lines[1:]:
        key, sep, found = line.partition(b":")
        if sep and key.strip().lower() == name:
            return found.strip()
    return None
