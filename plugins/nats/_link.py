"""One connection to NATS: connecting lazily, provisioning, and publishing with acks in flight.

Every client-library call of the plugin goes through here or through the consumer, wrapped
in ``translated()``, so nothing outside the plugin sees a nats-py type or error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import math
import re
from collections.abc import Iterator, Sequence

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from atp.core.errors import BackendUnavailable, ConfigError, translate_errors
from atp.core.ports import Clock
from atp.core.urls import mask
from atp.plugins.nats._config import NatsConfig

__all__ = ["Link", "Outgoing", "consumer_name", "translated"]

log = logging.getLogger("atp.plugins.nats")

Outgoing = tuple[str, bytes, str]
"""One message to publish: (NATS subject, body: the task id, message id)."""

_READABLE = re.compile(r"[^A-Za-z0-9_-]")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise nats-py's errors (and socket errors) as BackendUnavailable naming ``what``."""
    with translate_errors(
        {
            nats.errors.Error: lambda exc: BackendUnavailable(f"nats: {what} failed: {_say(exc)}"),
            OSError: lambda exc: BackendUnavailable(f"nats: {what} failed: {_say(exc)}"),
            TimeoutError: lambda exc: BackendUnavailable(f"nats: {what} timed out"),
        }
    ):
        yield


def consumer_name(group: str, pattern: str) -> str:
    """The durable consumer of (``group``, ``pattern``): readable, and unique by its digest.

    NATS names allow no ``.``, ``*``, ``>`` or spaces, so the readable part is lossy
    (``orders.*`` -> ``orders_STAR``); the digest of the exact pair keeps names apart.
    """
    shown = pattern.replace("*", "STAR").replace(">", "ALL")
    readable = _READABLE.sub("_", f"{group}__{shown}")[:48]
    digest = hashlib.sha256(f"{group}\0{pattern}".encode()).hexdigest()[:12]
    return f"{readable}_{digest}"


class _Batch:
    """The acks one ``publish`` call waits for."""

    __slots__ = ("acked", "done", "errors", "waiting")

    def __init__(self, size: int) -> None:
        self.acked = bytearray(size)
        self.waiting = size
        self.errors: list[str] = []
        self.done = asyncio.Event()


class Link:
    """The connection of one transport, opened on first use and provisioned once.

    After a reconnect nats-py restores subscriptions by itself; the stream is checked
    again only when the server says it is missing.
    """

    def __init__(self, config: NatsConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._stream_ok = False
        self._closing = False
        self._inbox = ""
        self._batches: dict[str, _Batch] = {}
        self._batch_ids = itertools.count(1)

    async def client(self) -> tuple[NatsClient, JetStreamContext]:
        """The connected client, with the stream provisioned; BackendUnavailable if not."""
        if self._nc is None or not self._stream_ok or self._nc.is_closed:
            async with self._lock:
                await self._open()
        assert self._nc is not None
        assert self._js is not None
        return self._nc, self._js

    def stream_lost(self) -> None:
        """Provision the stream again before the next call (the server lost or lacks it)."""
        self._stream_ok = False

    @property
    def epoch(self) -> int:
        """How often the connection was re-established; consumers check themselves anew
        after a reconnect (the server may have restarted)."""
        return int(self._nc.stats["reconnects"]) if self._nc is not None else 0

    async def ensure_consumer(self, name: str, pattern: str, group: str) -> None:
        """Create the durable pull consumer, or bring its settings in line; idempotent.

        A new consumer starts at the stream's oldest message (at most ``max_age`` old), so
        tasks published before their group first subscribed are delivered; those another
        group ran already are dropped at claim. A consumer whose position is
        past the stream's last message (a server that lost its sequence on restart) is
        created afresh, or it would skip every new message up to its old position.
        """
        _, js = await self.client()
        stream = self.config.stream
        with translated(f"looking up consumer {name!r}"):
            last = await self._last_sequence(js)
            found = await self._consumer_info(js, name)
            position = found.delivered.stream_seq if found and found.delivered else 0
            if found is not None and position > last:
                log.warning(
                    "nats: consumer %s is at stream sequence %d past the stream's "
                    "last %d (the server lost its sequence); creating it afresh",
                    name,
                    position,
                    last,
                )
                await js.delete_consumer(stream, name)
                found = None
        if found is None:
            await self._create_consumer(js, name, pattern, group)
        elif _consumer_changes(found.config, self.config):
            with translated(f"updating consumer {name!r}"):
                await js.add_consumer(stream, self._tuned(found.config))

    async def _last_sequence(self, js: JetStreamContext) -> int:
        try:
            info = await js.stream_info(self.config.stream)
        except nats.js.errors.NotFoundError:  # deleted under us: provision it again
            self.stream_lost()
            _, js = await self.client()
            info = await js.stream_info(self.config.stream)
        return int(info.state.last_seq)

    async def _consumer_info(self, js: JetStreamContext, name: str) -> ConsumerInfo | None:
        try:
            info: ConsumerInfo = await js.consumer_info(self.config.stream, name)
        except nats.js.errors.NotFoundError:
            return None
        return info

    async def _create_consumer(
        self, js: JetStreamContext, name: str, pattern: str, group: str
    ) -> None:
        config = self._tuned(
            ConsumerConfig(
                durable_name=name,
                description=f"atp group {group!r}, pattern {pattern!r}",
                filter_subject=self.config.subject(pattern),
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
            )
        )
        try:
            with translated(f"creating consumer {name!r}"):
                await js.add_consumer(self.config.stream, config)
        except BackendUnavailable as exc:
            if not _refused(exc):
                raise
            # another process may have created it first
            with translated(f"looking up consumer {name!r}"):
                if await self._consumer_info(js, name) is None:
                    raise ConfigError(
                        f"nats: the server refused consumer {name!r}: {exc.__cause__}"
                    ) from exc

    def _tuned(self, config: ConsumerConfig) -> ConsumerConfig:
        return dataclasses.replace(
            config,
            ack_wait=self.config.ack_wait,
            max_deliver=-1,
            max_ack_pending=self.config.max_ack_pending,
        )

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish every message with its id, then wait for all acks at once.

        Raises BackendUnavailable if any ack is missing or negative after
        ``publish_timeout``; some of the messages may then have been stored.
        """
        nc, _ = await self.client()
        batch_id = str(next(self._batch_ids))
        batch = _Batch(len(messages))
        self._batches[batch_id] = batch
        reply = f"{self._inbox}.{batch_id}."
        try:
            with translated(f"publishing {len(messages)} tasks"):
                for index, (subject, data, msg_id) in enumerate(messages):
                    await nc.publish(subject, data, reply + str(index), {"Nats-Msg-Id": msg_id})
            await self._clock.wait(batch.done, self.config.publish_timeout)
        finally:
            del self._batches[batch_id]
        if batch.waiting or batch.errors:
            raise self._unconfirmed(batch, len(messages))

    async def flush(self, what: str) -> None:
        """Make sure the server has read what was sent so far (one round trip)."""
        nc, _ = await self.client()
        with translated(what):
            await nc.flush(math.ceil(self.config.publish_timeout))

    async def close(self) -> None:
        """Flush what is pending and close the connection; later use reconnects."""
        async with self._lock:
            nc, self._nc, self._js, self._stream_ok = self._nc, None, None, False
            if nc is not None and not nc.is_closed:
                self._closing = True
                try:
                    with contextlib.suppress(Exception):
                        await nc.close()
                finally:
                    self._closing = False

    # -- opening -------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._nc is None or self._nc.is_closed:
            self._nc = await self._connect()
            self._js = self._nc.jetstream(timeout=self.config.publish_timeout)
            self._inbox = self._nc.new_inbox()
            with translated("subscribing to publish acks"):
                await self._nc.subscribe(self._inbox + ".*.*", cb=self._on_ack)
        if not self._stream_ok:
            await self._ensure_stream()
            self._stream_ok = True

    async def _connect(self) -> NatsClient:
        with translated(f"connecting to {', '.join(map(mask, self.config.servers))}"):
            return await nats.connect(
                servers=list(self.config.servers),
                name="atp",
                connect_timeout=self.config.connect_timeout,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_log_error,
                disconnected_cb=self._log_disconnected,
                reconnected_cb=_log_reconnected,
            )

    async def _ensure_stream(self) -> None:
        """Create the stream, or update what may change; refuse a changed storage type."""
        assert self._js is not None
        wanted = self._stream_config()
        try:
            with translated(f"looking up stream {self.config.stream!r}"):
                info = await self._js.stream_info(self.config.stream)
        except BackendUnavailable as exc:
            if not isinstance(exc.__cause__, nats.js.errors.NotFoundError):
                raise
            await self._create_stream(wanted)
            return
        await self._reconcile(info.config, wanted)

    async def _create_stream(self, wanted: StreamConfig) -> None:
        assert self._js is not None
        try:
            with translated(f"creating stream {wanted.name!r}"):
                await self._js.add_stream(wanted)
        except BackendUnavailable as exc:
            if _refused(exc):
                raise ConfigError(
                    f"nats: the server refused stream {wanted.name!r} for subjects "
                    f"{wanted.subjects} with replicas={wanted.num_replicas}: "
                    f"{exc.__cause__}"
                ) from exc
            raise
        log.info("nats: created stream %s for %s", wanted.name, wanted.subjects)

    async def _reconcile(self, found: StreamConfig, wanted: StreamConfig) -> None:
        assert self._js is not None
        if found.storage != wanted.storage or found.retention != wanted.retention:
            raise ConfigError(
                f"nats: stream {wanted.name!r} exists with storage={_value(found.storage)}, "
                f"retention={_value(found.retention)}; atp wants "
                f"storage={_value(wanted.storage)}, retention=limits. Storage and "
                "retention cannot change: use another stream name, or move the tasks first"
            )
        changed = _differences(found, wanted)
        if changed:
            log.warning("nats: updating stream %s: %s", wanted.name, ", ".join(changed))
            with translated(f"updating stream {wanted.name!r}"):
                await self._js.update_stream(wanted)

    def _stream_config(self) -> StreamConfig:
        config = self.config
        return StreamConfig(
            name=config.stream,
            description="atp tasks",
            subjects=config.retention_subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE if config.storage == "file" else StorageType.MEMORY,
            num_replicas=config.replicas,
            max_age=config.max_age,
            duplicate_window=config.duplicate_window,
            discard=DiscardPolicy.OLD,
        )

    # -- acks ----------------------------------------------------------------------------

    async def _on_ack(self, msg: Msg) -> None:
        _, batch_id, index = msg.subject.rsplit(".", 2)
        batch = self._batches.get(batch_id)
        if batch is None or batch.acked[int(index)]:
            return  # an ack after its publish gave up, or a repeat
        batch.acked[int(index)] = 1
        batch.waiting -= 1
        error = _ack_error(msg)
        if error:
            batch.errors.append(error)
            if "no responders" in error:
                self.stream_lost()
        if batch.waiting == 0:
            batch.done.set()

    async def _log_disconnected(self) -> None:
        if not self._closing:
            log.warning("nats: disconnected; reconnecting")

    def _unconfirmed(self, batch: _Batch, total: int) -> BackendUnavailable:
        failed = batch.waiting + len(batch.errors)
        why = (
            batch.errors[0] if batch.errors else (f"no ack within {self.config.publish_timeout:g}s")
        )
        return BackendUnavailable(
            f"nats: {failed} of {total} publishes to stream {self.config.stream!r} were not "
            f"confirmed ({why}); some may have been stored, publishing again is safe"
        )


def _ack_error(msg: Msg) -> str | None:
    status = msg.headers.get("Status") if msg.headers else None
    if status == "503":
        return "no responders: the stream does not exist"
    if status:
        return f"status {status}"
    try:
        answer = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return f"unreadable ack {msg.data[:80]!r}"
    error = answer.get("error") if isinstance(answer, dict) else None
    return f"{error.get('description', error)}" if error else None


def _refused(exc: BaseException) -> bool:
    """Whether the server answered a request with a refusal (not an outage)."""
    cause = exc.__cause__
    return isinstance(cause, nats.js.errors.APIError) and not isinstance(
        cause, nats.js.errors.ServiceUnavailableError
    )


def _consumer_changes(found: ConsumerConfig, config: NatsConfig) -> bool:
    return (found.ack_wait, found.max_deliver, found.max_ack_pending) != (
        config.ack_wait,
        -1,
        config.max_ack_pending,
    )


def _differences(found: StreamConfig, wanted: StreamConfig) -> list[str]:
    names = ("subjects", "num_replicas", "max_age", "duplicate_window")
    return [
        f"{name} {getattr(found, name)!r} -> {getattr(wanted, name)!r}"
        for name in names
        if getattr(found, name) != getattr(wanted, name)
    ]


def _value(value: object) -> str:
    return str(getattr(value, "value", value))


def _say(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


async def _log_error(exc: Exception) -> None:
    log.warning("nats: connection error: %s", _say(exc))


async def _log_reconnected() -> None:
    log.info("nats: reconnected")
