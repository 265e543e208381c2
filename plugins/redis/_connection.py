"""Connections: one redis-py pool per process (and event loop) per URL, the scripts, and
the translation of redis-py errors into atp's.

The transport, the store and the coordinator of one process share the pool of their
URL. A dropped connection is retried by redis-py with exponential backoff (three times,
20 ms doubling to 500 ms); what still fails raises BackendUnavailable, never a silent
drop. A paused or unreachable server fails a port call after ``socket_timeout`` (default
5 s): the bound is an ``asyncio.timeout`` around the whole call (``Link.guard``), not
redis-py's own socket timeout, which wraps every command's write in ``asyncio.wait_for``
and so costs a Task per command on Python 3.11.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from atp.core.errors import BackendUnavailable, FencedOut, InvalidInput
from atp.core.urls import mask, query_options
from atp.plugins.redis._checks import DURABILITY, ServerCheck

__all__ = ["Guard", "Link", "RedisUrl", "Scripts", "parse_url", "translate"]

SCHEMES = ("redis", "rediss")
_FENCED = re.compile(r"FENCED (\d+)")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_DEFAULTS = {"socket_connect_timeout": "5", "health_check_interval": "15"}
DEFAULT_TIMEOUT = 5.0
"""Seconds a port call may take before it raises BackendUnavailable (``?socket_timeout=``)."""
_OURS = ("prefix", "socket_timeout", "durability")
_CLIENT_OPTIONS = (
    "db",
    "socket_connect_timeout",
    "socket_read_size",
    "socket_keepalive",
    "retry_on_timeout",
    "max_connections",
    "health_check_interval",
    "username",
    "password",
    "client_name",
)
_TLS_OPTIONS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_ca_data",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_include_verify_flags",
    "ssl_exclude_verify_flags",
)
"""The query options redis-py is given: the TLS ones only on ``rediss://``."""
_STORE = ("_common",)
_ADMIN = ("_common", "_admin")
_LIBRARIES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "take_due",
            "release",
            "stamp_ready",
            "cancel",
            "recover",
            "redispatch",
            "requeue",
            "delete",
            "quarantine",
            "schedule_put",
            "schedule_advance",
            "schedule_remove",
        ),
        _ADMIN,
    ),
    "heartbeat": _STORE,
    "create": (*_STORE, "_create"),
    "create_publish": (*_STORE, "_create"),
    "claim": (*_STORE, "_claim"),
    "fetch_claim": (*_STORE, "_claim", "_streams", "_entries"),
    "claim_entries": (*_STORE, "_claim", "_streams", "_entries"),
    "finish": (*_STORE, "_finish"),
    "finish_ack": (*_STORE, "_finish"),
    **dict.fromkeys(
        ("flow_admit", "flow_release", "flow_park", "flow_wake_ready", "flow_unpark"),
        ("_flow",),
    ),
    "flow_wake": _STORE,
    **dict.fromkeys(("breaker_observe", "breaker_probe", "breaker_reset"), ("_breaker",)),
    **dict.fromkeys(("registry_announce", "registry_members"), ("_registry",)),
    "stream_terminate": ("_streams",),
    "stream_reclaim": ("_streams",),
}
"""The shared Lua each script is built from, prepended in this order."""


@dataclass(frozen=True, slots=True)
class RedisUrl:
    """A parsed ``redis://`` or ``rediss://`` URL: what redis-py connects to, and our prefix."""

    connect: str
    prefix: str
    timeout: float = DEFAULT_TIMEOUT
    """Seconds one port call may take (``?socket_timeout=``, default 5)."""
    durability: str = "checked"
    """``checked``: warn at start-up if the server is not persistent (AOF); ``none``: the
    operator accepts a server that may lose acknowledged writes (``?durability=``)."""

    def same_keys(self, other: RedisUrl) -> bool:
        """Whether both URLs name one keyspace: the same server, database and prefix."""
        return self.prefix == other.prefix and _keyspace(self.connect) == _keyspace(other.connect)


def _keyspace(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    db = parts.path.strip("/") or dict(parse_qsl(parts.query)).get("db", "0")
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or 6379, db)


def parse_url(url: str) -> RedisUrl | None:
    """Parse a Redis URL; None for another scheme; InvalidInput for a malformed one.

    ``?prefix=name`` (default ``atp``) starts every key; ``socket_timeout`` bounds a port
    call; ``durability=none`` silences the persistence warning. The options redis-py
    takes (``_CLIENT_OPTIONS``, and ``_TLS_OPTIONS`` on ``rediss://``) are checked here
    and passed on; any other is refused, naming the known ones.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        return None
    shown = f"redis URL {mask(url)!r}"
    if not parts.hostname and not parts.path.strip("/"):
        raise InvalidInput(f"{shown}: expected redis://host[:port][/db]")
    known = (*_OURS, *_CLIENT_OPTIONS, *_TLS_OPTIONS)
    options = query_options(shown, parts.query, known)
    _check_client_options(shown, scheme, options)
    prefix = options.pop("prefix", "atp")
    if not _PREFIX.match(prefix):
        raise InvalidInput(f"{shown}: prefix {prefix!r} must be 1 to 64 letters, digits, '_.:-'")
    timeout = _timeout(shown, options.pop("socket_timeout", str(DEFAULT_TIMEOUT)))
    durability = options.pop("durability", "checked").lower()
    if durability not in DURABILITY:
        raise InvalidInput(f"{shown}: durability must be 'checked' or 'none', got {durability!r}")
    for name, value in _DEFAULTS.items():
        options.setdefault(name, value)
    try:
        _ = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{shown}: {exc}") from exc
    connect = urlunsplit(parts._replace(query=urlencode(options)))
    return RedisUrl(connect, prefix, timeout, durability)


def _check_client_options(shown: str, scheme: str, options: dict[str, str]) -> None:
    """Refuse what redis-py would only refuse on the first connection, and obscurely."""
    for name, value in options.items():
        if name in _TLS_OPTIONS and scheme != "rediss":
            raise InvalidInput(f"{shown}: option {name!r} needs TLS: use rediss://")
        parser = URL_QUERY_ARGUMENT_PARSERS.get(name)
        if parser is None:
            continue
        try:
            parser(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{shown}: option {name!r}: bad value {value!r}") from exc


def _timeout(shown: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise InvalidInput(f"{shown}: socket_timeout must be seconds > 0, got {text!r}")
    return value


def translate(what: str, timeout: float | None = None) -> Guard:
    """``async with translate(what, timeout)``: bound the calls inside to ``timeout``
    seconds and turn redis-py errors into atp's: FencedOut for a refused fence,
    BackendUnavailable for everything the server or the network did not confirm in time.

    A call cut short by the timeout leaves no half-read reply behind: redis-py drops a
    connection whose command was interrupted.
    """
    return Guard(what, timeout)


class Guard:
    """The context manager of ``translate``: a plain class, as it wraps every port call.

    The bound is one timer handle that cancels the task, as ``asyncio.timeout`` does,
    without its state machine (a few µs per call on the hot path); it starts no Task.
    """

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "_timeout", "_what")

    def __init__(self, what: str, timeout: float | None = None) -> None:
        self._what = what
        self._timeout = timeout
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False

    async def __aenter__(self) -> None:
        if self._timeout is None:
            return
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("redis: a port call must run inside a task")
        self._task, self._cancelling = task, task.cancelling()
        loop = asyncio.get_running_loop()
        self._handle = loop.call_at(loop.time() + self._timeout, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        # Our own cancel, not the caller's: asyncio.timeout's test (uncancel down to the
        # count seen on entry).
        expired = self._expired and self._task.uncancel() <= self._cancelling
        if expired and kind is asyncio.CancelledError:
            raise BackendUnavailable(
                f"redis {self._what}: no answer within {self._timeout:g}s"
            ) from exc
        if exc is not None and isinstance(exc, rexc.RedisError | OSError):
            raise _translated(self._what, exc) from exc
        return False


def _translated(what: str, exc: BaseException) -> Exception:
    if not isinstance(exc, rexc.ResponseError):
        return BackendUnavailable(f"redis {what} was not confirmed: {exc}")
    text = str(exc)
    fenced = _FENCED.search(text)
    if fenced:
        newest = fenced.group(1)
        return FencedOut(
            f"redis {what}: fencing token is older than {newest}; another leader took over"
        )
    return BackendUnavailable(f"redis {what}: the server refused it: {text}")


def _pack_command(self: Any, *args: Any) -> list[bytes]:
    """Encode one command in one join: redis-py's packer copies its buffer per argument,
    which costs milliseconds for the batched script calls of thousands of arguments."""
    if isinstance(args[0], str):
        args = (*args[0].encode().split(), *args[1:])
    encode = self.encoder.encode
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)
        data = arg if kind is bytes else arg.encode() if kind is str else encode(arg)
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return [b"".join(parts)]


class _Connection(aioredis.Connection):
    pack_command = _pack_command


class _SSLConnection(aioredis.SSLConnection):
    pack_command = _pack_command


class _Pools:
    """The shared clients: one per event loop and URL, counted, closed with the last user."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, list[Any]]
        ] = weakref.WeakKeyDictionary()

    def take(self, url: RedisUrl) -> aioredis.Redis:
        clients = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        key = _pool_key(url)
        entry = clients.get(key)
        if entry is None:
            retry = Retry(ExponentialBackoff(cap=0.5, base=0.02), 3)
            # No socket timeout (redis-py's default is 5 s): Link.guard bounds each call.
            client = aioredis.Redis.from_url(
                url.connect,
                retry=retry,
                retry_on_error=[rexc.ConnectionError, rexc.TimeoutError],
                socket_timeout=None,
                redis_connect_func=ServerCheck(url.connect, url.durability).on_connect,
            )
            pool = client.connection_pool
            ssl = issubclass(pool.connection_class, aioredis.SSLConnection)
            pool.connection_class = _SSLConnection if ssl else _Connection
            entry = clients[key] = [client, 0]
        entry[1] += 1
        return entry[0]  # type: ignore[no-any-return]

    async def give_back(self, url: RedisUrl, client: aioredis.Redis) -> None:
        clients = self._by_loop.get(asyncio.get_running_loop(), {})
        key = _pool_key(url)
        entry = clients.get(key)
        if entry is None or entry[0] is not client:
            await client.aclose()
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del clients[key]
            await client.aclose()


def _pool_key(url: RedisUrl) -> str:
    # The durability choice is part of the key: it decides what the check of a pool says.
    return f"{url.connect}#{url.durability}"


_POOLS = _Pools()


class Link:
    """One backend's handle on its URL's shared client, taken on first use (no I/O before).

    ``call`` runs single commands (the scripts) on connections the Link keeps checked out
    of the shared pool: redis-py 8's ``execute_command`` costs about 20 µs of CPU per
    command (the pool's lock, observability records, event dispatch), as much as the
    round trip itself. Pipelines and the other commands go through the client.
    """

    def __init__(self, url: RedisUrl) -> None:
        self.url = url
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[aioredis.Connection] = []
        self.closed = False

    def guard(self, what: str, extra: float = 0.0) -> Guard:
        """``async with link.guard(what)``: the calls inside bounded by the URL's timeout
        (plus ``extra``, a blocking read's own wait) and their errors translated."""
        return translate(what, self.url.timeout + extra)

    @property
    def client(self) -> Any:
        """The shared client (a ``redis.asyncio.Redis``) of this URL on the running loop."""
        if self.closed:
            raise BackendUnavailable("redis: this backend is closed")
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = _POOLS.take(self.url), loop
            self._idle = []  # connections of another loop's pool
        return self._client

    async def call(self, *args: Any) -> Any:
        """Run one command and return its reply, with the client's retry policy (a dropped
        connection is reconnected and the command sent again); errors are redis-py's.

        A connection comes back clean or closed: redis-py closes one whose command failed
        or was cancelled half-way, and it reconnects on its next use.
        """
        client = self.client
        pool = client.connection_pool
        conn = self._idle.pop() if self._idle else await pool.get_connection()
        try:
            return await conn.retry.call_with_retry(
                partial(_send, conn, args), partial(_drop, conn)
            )
        finally:
            if self.closed or conn.should_reconnect():
                await pool.release(conn)
            else:
                self._idle.append(conn)

    async def close(self) -> None:
        self.closed = True
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            idle, self._idle = self._idle, []
            for conn in idle:
                await client.connection_pool.release(conn)
            await _POOLS.give_back(self.url, client)


async def _send(conn: aioredis.Connection, args: tuple[Any, ...]) -> Any:
    await conn.send_packed_command(conn.pack_command(*args))
    return await conn.read_response()


async def _drop(conn: aioredis.Connection, error: Exception) -> None:
    """Before a retry: close the connection, which reconnects when the command is resent."""
    await conn.disconnect()


class Scripts:
    """The Lua scripts, read once from the package and run by SHA.

    A server that lost its script cache (a restart, SCRIPT FLUSH) answers NOSCRIPT; the
    script is then loaded again and the call repeated, once.
    """

    _sources: dict[str, tuple[str, str]] = {}

    @classmethod
    def source(cls, name: str) -> tuple[str, str]:
        """Return (source, sha1) of script ``name``, reading it on first use."""
        found = cls._sources.get(name)
        if found is None:
            folder = resources.files("atp.plugins.redis") / "lua"
            parts = [*_LIBRARIES.get(name, ()), name]
            text = "\n".join((folder / f"{part}.lua").read_text() for part in parts)
            found = cls._sources[name] = (text, hashlib.sha1(text.encode()).hexdigest())
        return found

    @classmethod
    async def run(
        cls, on: Link | aioredis.Redis, name: str, keys: Sequence[str | bytes], args: Sequence[Any]
    ) -> Any:
        """Run script ``name`` with ``keys`` and ``args`` on a Link (its lean ``call``) or
        a client; errors are redis-py's."""
        call = on.call if isinstance(on, Link) else on.execute_command
        text, sha = cls.source(name)
        try:
            return await call("EVALSHA", sha, len(keys), *keys, *args)
        except rexc.NoScriptError:
            await call("SCRIPT", "LOAD", text)
            return await call("EVALSHA", sha, len(keys), *keys, *args)

    @classmethod
    async def run_many(
        cls, client: aioredis.Redis, calls: Sequence[tuple[str, Sequence[Any], Sequence[Any]]]
    ) -> list[Any]:
        """Run several (script, keys, args) calls in one pipeline (one round trip).

        Each call must be safe to repeat: after NOSCRIPT the scripts are loaded and every
        call runs again.
        """
        for attempt in (1, 2):
            async with client.pipeline(transaction=False) as pipe:
                for name, keys, args in calls:
                    pipe.evalsha(cls.source(name)[1], len(keys), *keys, *args)
                try:
                    return await pipe.execute()
                except rexc.NoScriptError:
                    if attempt == 2:
                        raise
                    for name in {call[0] for call in calls}:
                        await client.script_load(cls.source(name)[0])
        raise AssertionError("unreachable")
