"""Proxies, their links and the pipes that carry each direction through the toxics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

from chaos.toxiproxy.toxics import Toxic, ToxicError, parse_toxic, update_toxic

__all__ = ["Link", "Pipe", "Proxy", "ProxyError", "Registry"]

log = logging.getLogger("chaos.toxiproxy")
CHUNK = 32 * 1024
P = ParamSpec("P")
T = TypeVar("T")
GUARD_PERIOD = 0.01
"""How often a link checks its ``timeout`` toxics, in seconds."""


class ProxyError(Exception):
    """An API error: ``status`` is the HTTP status, the message its ``error`` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _split_address(address: str, field: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ProxyError(400, f"{field} must be host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


class Pipe:
    """One direction of one link: reads chunks, runs them through the toxics, writes them."""

    def __init__(
        self, link: Link, stream: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.link = link
        self.stream = stream
        self.reader = reader
        self.writer = writer
        self.passed = 0
        self.last_data = asyncio.get_running_loop().time()
        self._chosen: dict[str, tuple[float, bool]] = {}
        self._queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue(maxsize=1024)

    def close(self) -> None:
        self.link.close()

    def reset(self) -> None:
        self.link.reset()

    def toxics(self) -> list[Toxic]:
        """The toxics of this direction that this link drew (toxicity is per link)."""
        return [
            t for t in self.link.proxy.toxics.values() if t.stream == self.stream and self._draw(t)
        ]

    def _draw(self, toxic: Toxic) -> bool:
        drawn = self._chosen.get(toxic.name)
        if drawn is None or drawn[0] != toxic.toxicity:
            drawn = (toxic.toxicity, random.random() < toxic.toxicity)
            self._chosen[toxic.name] = drawn
        return drawn[1]

    async def read_loop(self) -> None:
        """Read and timestamp chunks, so a slow toxic does not delay the reading."""
        loop = asyncio.get_running_loop()
        try:
            while chunk := await self.reader.read(CHUNK):
                self.last_data = loop.time()
                await self._queue.put((chunk, self.last_data))
        except (ConnectionError, OSError):
            pass
        finally:
            await self._queue.put(None)

    async def write_loop(self) -> None:
        try:
            while (item := await self._queue.get()) is not None:
                await self._send(self.toxics(), *item)
            await self._slow_close()
        except (ConnectionError, OSError):
            pass
        finally:
            self.link.close()

    async def _send(self, toxics: list[Toxic], data: bytes, arrived: float) -> None:
        if not toxics:
            self.writer.write(data)
            await self.writer.drain()
            return
        head, rest = toxics[0], toxics[1:]

        async def forward(piece: bytes) -> None:
            await self._send(rest, piece, arrived)

        await head.apply(self, data, arrived, forward)

    async def _slow_close(self) -> None:
        delays = [t.number("delay") for t in self.toxics() if t.type == "slow_close"]
        if delays:
            await asyncio.sleep(max(delays) / 1000)

    def timed_out(self, now: float) -> bool:
        """Whether a ``timeout`` toxic with a limit has seen no data for that long."""
        limits = [t.number("timeout") for t in self.toxics() if t.type == "timeout"]
        limits = [limit for limit in limits if limit > 0]
        return bool(limits) and now - self.last_data >= min(limits) / 1000


class Link:
    """One client connection and its upstream connection, with a pipe each way."""

    def __init__(
        self,
        proxy: Proxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.writers = (client[1], server[1])
        self.pipes = (
            Pipe(self, "upstream", client[0], server[1]),
            Pipe(self, "downstream", server[0], client[1]),
        )
        self.closed = asyncio.Event()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(coro)
            for pipe in self.pipes
            for coro in (pipe.read_loop(), pipe.write_loop())
        ]
        tasks.append(asyncio.create_task(self._guard()))
        try:
            await self.closed.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    async def _guard(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed.is_set():
            await asyncio.sleep(GUARD_PERIOD)
            if any(pipe.timed_out(loop.time()) for pipe in self.pipes):
                self.close()

    def close(self) -> None:
        """Close both sides with a FIN."""
        for writer in self.writers:
            if not writer.is_closing():
                writer.close()
        self.closed.set()

    def reset(self) -> None:
        """Close both sides with an RST (SO_LINGER 0), as a peer that crashed would."""
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None and not writer.is_closing():
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport = writer.transport
            transport.abort()
        self.closed.set()


class Proxy:
    """A listener that forwards each connection to ``upstream`` through its toxics."""

    def __init__(self, name: str, listen: str, upstream: str, enabled: bool = True) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = enabled
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self._accepted: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        _split_address(listen, "listen")
        _split_address(upstream, "upstream")

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.as_json() for t in self.toxics.values()],
        }

    async def start(self) -> None:
        if self._server is not None or not self.enabled:
            return
        host, port = _split_address(self.listen, "listen")
        try:
            self._server = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise ProxyError(500, f"listen {self.listen}: {exc.strerror or exc}") from exc
        bound = self._server.sockets[0].getsockname()
        self.listen = f"{host}:{bound[1]}"

    async def stop(self) -> None:
        """Stop listening and cut every live connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self.links):
            link.close()
        for writer in list(self._accepted):
            writer.close()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._accepted.add(writer)
        try:
            server = await self._open_upstream()
            if server is None or writer.is_closing():  # cut while we connected upstream
                writer.close()
                if server is not None:
                    server[1].close()
                return
            link = Link(self, (reader, writer), server)
            self.links.add(link)
            try:
                await link.run()
            finally:
                self.links.discard(link)
        finally:
            self._accepted.discard(writer)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        host, port = _split_address(self.upstream, "upstream")
        try:
            return await asyncio.open_connection(host, port)
        except OSError as exc:
            log.info("proxy %s: upstream %s refused: %s", self.name, self.upstream, exc)
            return None


class Registry:
    """Every proxy of one server, with the operations the HTTP API offers."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ProxyError(404, "proxy not found") from None

    async def create(self, body: Mapping[str, Any]) -> Proxy:
        for field in ("name", "upstream"):
            if not body.get(field):
                raise ProxyError(400, f"missing required field: {field}")
        if body["name"] in self.proxies:
            raise ProxyError(409, "proxy already exists")
        proxy = Proxy(
            str(body["name"]),
            str(body.get("listen") or "127.0.0.1:0"),
            str(body["upstream"]),
            bool(body.get("enabled", True)),
        )
        await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def update(self, name: str, body: Mapping[str, Any]) -> Proxy:
        proxy = self.get(name)
        moved = any(
            key in body and body[key] != getattr(proxy, key) for key in ("listen", "upstream")
        )
        if moved or body.get("enabled") is False:
            await proxy.stop()
        proxy.listen = str(body.get("listen", proxy.listen))
        proxy.upstream = str(body.get("upstream", proxy.upstream))
        proxy.enabled = bool(body.get("enabled", proxy.enabled))
        await proxy.start()
        return proxy

    async def delete(self, name: str) -> None:
        await self.get(name).stop()
        del self.proxies[name]

    async def populate(self, bodies: Iterable[Mapping[str, Any]]) -> list[Proxy]:
        """Create each proxy, replacing one of the same name whose addresses differ."""
        done = []
        for body in bodies:
            current = self.proxies.get(str(body.get("name")))
            if current is not None and (
                current.upstream != body.get("upstream")
                or body.get("listen", current.listen) != current.listen
            ):
                await self.delete(current.name)
                current = None
            done.append(current or await self.create(body))
        return done

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        for proxy in self.proxies.values():
            proxy.toxics.clear()
            proxy.enabled = True
            await proxy.start()

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()

    def add_toxic(self, name: str, body: Mapping[str, Any]) -> Toxic:
        proxy = self.get(name)
        toxic = _checked(parse_toxic, body)
        if toxic.name in proxy.toxics:
            raise ProxyError(409, "toxic already exists")
        proxy.toxics[toxic.name] = toxic
        return toxic

    def get_toxic(self, name: str, toxic: str) -> Toxic:
        try:
            return self.get(name).toxics[toxic]
        except KeyError:
            raise ProxyError(404, "toxic not found") from None

    def update_toxic(self, name: str, toxic: str, body: Mapping[str, Any]) -> Toxic:
        found = self.get_toxic(name, toxic)
        _checked(update_toxic, found, body)
        return found

    def remove_toxic(self, name: str, toxic: str) -> None:
        self.get_toxic(name, toxic)
        del self.get(name).toxics[toxic]


def _checked(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return call(*args, **kwargs)
    except ToxicError as exc:
        raise ProxyError(400, str(exc)) from exc
