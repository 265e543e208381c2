"""The Redis Streams transport: a stream per subject, a consumer group per atp group.

- entries carry the task id only (field ``i``): the envelope is stored once, in the task
  store, and the worker gets it from ``claim`` (ADR 0023). The streams live in the store's
  shard slot (``keys.py``), so a store fused with this transport (``RedisStore.fuse``)
  creates and publishes, fetches and claims, finishes and acks in one script each.
- publish: one script call ``XADD``s every task's id and notes the subjects in the
  registry; it returns once the server confirmed each, else raises BackendUnavailable.
- consume: a consumer reads every stream whose subject matches its pattern; it looks for
  new subjects in the registry twice a second, and creates its group on each stream at the
  stream's start, so what was published before the group existed is delivered too.
- leases: a delivery is leased while its pending entry's idle time is under the lease;
  ``keep_alive`` resets the idle time, consumers take over expired entries (``XPENDING
  IDLE`` then ``XCLAIM``, with the delivery count from the pending-entries list).
- nack: the entry's idle time is set so it becomes reclaimable after ``delay``, capped at
  the lease (so ``capabilities.delay`` is False: the core's retries go through the store).
- streams are trimmed to what every group has delivered and acked; nothing pending or
  unread is ever trimmed.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from atp.core.codec import loads
from atp.core.errors import AtpError, BackendUnavailable, InvalidInput
from atp.core.model import Task
from atp.core.ports import Capabilities, Clock, Consumer, Delivery, Transport
from atp.core.subjects import compile_pattern, validate_pattern, validate_subject
from atp.plugins.redis._connection import Guard, Link, RedisUrl, Scripts
from atp.plugins.redis.keys import StoreKeys, TransportKeys

__all__ = ["RedisConsumer", "RedisTransport"]

log = logging.getLogger("atp.plugins.redis")

DISCOVER_INTERVAL = 0.5
"""Seconds between a wildcard consumer's looks for new subjects."""
BLOCK_SLICE = 0.5
"""Longest single blocking read, so new subjects and expired leases are seen in time."""
TRIM_INTERVAL = 5.0
"""Seconds between trims of one stream by one consumer."""
_names = itertools.count(1)


class RedisTransport:
    """Moves READY task ids through Redis Streams; shared by every process on the server."""

    def __init__(self, url: RedisUrl, clock: Clock, lease: float = 30.0) -> None:
        if not lease > 0:
            raise InvalidInput(f"redis transport: lease must be greater than 0, got {lease!r}")
        self.clock = clock
        self.lease = lease
        self.keys = TransportKeys(url.prefix)
        self.link = Link(url)
        self.store_keys: StoreKeys | None = None
        """The keys of the store this transport is fused with (``bind``), else None."""
        self.capabilities = Capabilities(
            delay=False,
            deduplication=False,
            lease_extension=True,
            dead_letters=True,
            durable=True,
            lease_recovery=True,
            shared=True,
            lease=lease,
        )

    def bind(self, store_keys: StoreKeys) -> None:
        """Fuse with the store of ``store_keys`` (same server, prefix and shard): every
        consumer made from now on claims in the same script as it fetches."""
        self.store_keys = store_keys

    async def publish(self, tasks: Sequence[Task]) -> None:
        """``XADD`` every task's id to its subject's stream in one script call; return once
        the server confirmed each. InvalidInput, publishing none, for a bad subject."""
        if not tasks:
            return
        index: dict[str, int] = {}
        args: list[Any] = []
        for task in tasks:
            j = index.get(task.subject)
            if j is None:
                j = index[task.subject] = len(index) + 1
                validate_subject(task.subject)
            args += (j, task.id)
        keys = [self.keys.subjects, *map(self.keys.stream, index)]
        async with self.link.guard("publish"):
            await Scripts.run(self.link, "stream_publish", keys, [*index, *args])

    async def consume(self, pattern: str, group: str) -> Consumer:
        """A consumer of ``group`` over every subject matching ``pattern``, new ones too;
        a ClaimingConsumer when this transport is fused with a store."""
        validate_pattern(pattern)
        if not isinstance(group, str) or not group:
            raise InvalidInput(f"group must be a non-empty string, got {group!r}")
        consumer: RedisConsumer
        if self.store_keys is None:
            consumer = RedisConsumer(self, pattern, group)
        else:
            from atp.plugins.redis._claiming import ClaimingRedisConsumer

            consumer = ClaimingRedisConsumer(self, pattern, group, self.store_keys)
        await consumer.discover()
        return consumer

    async def close(self) -> None:
        """Give the shared pool back; unacked deliveries are reclaimed after their lease."""
        await self.link.close()


class RedisConsumer:
    """One consumer (a Redis consumer name) in its group, over the streams of a pattern."""

    def __init__(self, transport: RedisTransport, pattern: str, group: str) -> None:
        self._transport = transport
        self._keys = transport.keys
        self._clock = transport.clock
        self._pattern = pattern
        self._matches = compile_pattern(pattern)
        self._wildcard = "*" in pattern.split(".") or ">" in pattern.split(".")
        self._group = self._keys.group(group)
        self._name = f"{os.getpid()}-{os.urandom(4).hex()}-{next(_names)}"
        self._lease_ms = max(int(transport.lease * 1000), 1)
        self._streams: dict[bytes, str] = {}  # stream key -> subject
        self._known = -1
        self._discover_at = 0.0
        self._reclaim_at = 0.0
        self._trimmed: dict[str, float] = {}
        self.closed = False

    @property
    def _client(self) -> Any:
        return self._transport.link.client

    @property
    def _link(self) -> Link:
        return self._transport.link

    async def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Return expired deliveries taken over, else new ones, waiting up to ``timeout``.

        Raises BackendUnavailable if the consumer is closed or Redis does not answer.
        """
        self._check_fetch(max_items)
        deadline = self._clock.now() + timeout
        while True:
            now = self._clock.now()
            if now >= self._discover_at:
                await self.discover()
            found = await self._reclaim(max_items) if now >= self._reclaim_at else []
            if not found:
                wait = min(max(deadline - now, 0.0), BLOCK_SLICE)
                found = await self._read(max_items, wait)
            if found or self.closed or self._clock.now() >= deadline:
                return found

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """``XACK`` the deliveries, one pipeline for all streams; acking twice is harmless."""
        by_stream = _by_stream(deliveries)
        if not by_stream:
            return
        async with self._guard("ack"), self._client.pipeline(transaction=False) as pipe:
            for subject, ids in by_stream.items():
                pipe.xack(self._keys.stream(subject), self._group, *ids)
            await pipe.execute()
        await self._trim(list(by_stream))

    async def nack(self, deliveries: Sequence[Delivery], delay: float = 0.0) -> None:
        """Hand the deliveries back, reclaimable after ``delay`` (at most one lease)."""
        idle = max(self._lease_ms - int(delay * 1000), 0)
        await self._settle(_by_stream(deliveries), idle)
        self._reclaim_at = min(self._reclaim_at, self._clock.now() + max(delay, 0.0))

    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        """Restart the lease of each delivery this consumer still holds."""
        await self._settle(_by_stream(deliveries), 0)

    async def terminate(self, deliveries: Sequence[Delivery], reason: str) -> None:
        """Ack the deliveries for good, keeping a copy in the subject's dead-letter stream."""
        await self._terminate([_Raw.of(delivery) for delivery in deliveries], reason)

    async def close(self) -> None:
        """Stop fetching and make what this consumer holds reclaimable at once."""
        if self.closed:
            return
        self.closed = True
        try:
            await self._hand_off()
        except AtpError as exc:  # they come back after their lease instead
            log.warning("redis consumer %s: handing off at close failed: %s", self._name, exc)

    async def discover(self) -> None:
        """Find the streams matching the pattern and join the group on the new ones."""
        self._discover_at = self._clock.now() + DISCOVER_INTERVAL
        if not self._wildcard:
            subjects = [self._pattern]
        else:
            async with self._guard("subject discovery"):
                known = await self._client.scard(self._keys.subjects)
                if known == self._known:
                    return
                members = await self._client.smembers(self._keys.subjects)
            self._known = known
            subjects = sorted(s.decode() for s in members if self._matches(s.decode()))
        for subject in subjects:
            stream = self._keys.stream(subject).encode()
            if stream not in self._streams:
                await self._join(stream)
                self._streams[stream] = subject

    async def _join(self, stream: bytes) -> None:
        try:
            async with self._guard("joining a stream"):
                await self._client.xgroup_create(stream, self._group, id="0", mkstream=True)
        except BackendUnavailable as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, max_items: int, wait: float) -> list[Delivery]:
        if not self._streams:
            if wait > 0:
                await self._clock.sleep(wait)
            return []
        return await self._valid(await self._read_raw(max_items, wait))

    async def _read_raw(self, max_items: int, wait: float) -> list[_Raw]:
        """Up to ``max_items`` new entries, blocking up to ``wait`` for the first."""
        block = int(wait * 1000) or None
        streams = dict.fromkeys(self._streams, ">")
        try:
            async with self._guard("fetch", wait):
                reply = await self._client.xreadgroup(
                    self._group, self._name, streams, count=max_items, block=block
                )
        except BackendUnavailable as exc:
            self._check_groups(exc)
            return []
        found = [
            _Raw(self._streams[stream], entry_id.decode(), _entry_task(fields), 1)
            for stream, entries in reply or ()
            for entry_id, fields in entries
        ]
        if len(found) > max_items:  # COUNT is per stream: give the surplus back at once
            await self._settle(_group_raws(found[max_items:]), self._lease_ms)
            self._reclaim_at = 0.0
        return found[:max_items]

    async def _reclaim(self, max_items: int) -> list[Delivery]:
        self._reclaim_at = self._clock.now() + min(self._transport.lease / 4, 1.0)
        found: list[_Raw] = []
        for stream, subject in list(self._streams.items()):
            want = max_items - len(found)
            if want <= 0:
                break
            args = [self._group, self._name, self._lease_ms, want]
            try:
                async with self._guard("reclaiming expired deliveries"):
                    reply = await Scripts.run(self._link, "stream_reclaim", [stream], args)
            except BackendUnavailable as exc:
                self._check_groups(exc)
                break
            for i in range(0, len(reply), 3):
                found.append(_Raw(subject, reply[i].decode(), reply[i + 1], int(reply[i + 2])))
        return await self._valid(found)

    def _check_fetch(self, max_items: int) -> None:
        if self.closed:
            raise BackendUnavailable("redis transport: fetch on a closed consumer")
        if max_items < 1:
            raise InvalidInput(f"max_items must be at least 1, got {max_items!r}")

    def _check_groups(self, exc: BackendUnavailable) -> None:
        """Re-raise ``exc`` unless the server lost our group (a restart without AOF, or a
        deleted stream): then join every stream again on the next fetch."""
        if "NOGROUP" not in str(exc):
            raise exc
        self._lose_groups()

    def _lose_groups(self) -> None:
        log.warning("redis consumer %s: consumer group gone, joining again", self._name)
        self._streams.clear()
        self._known = -1
        self._discover_at = 0.0

    async def _valid(self, raws: list[_Raw]) -> list[Delivery]:
        """Deliveries of the entries that name a task id; the others are terminated and
        logged. Whether the id is a stored task is the store's ``claim`` to say."""
        good: list[Delivery] = []
        bad: list[_Raw] = []
        for raw in raws:
            task_id = _task_id(raw.task_id)
            if task_id is None:
                log.error(
                    "redis stream %s: entry %s names no task id, dropped", raw.subject, raw.entry_id
                )
                bad.append(raw)
                continue
            good.append(Delivery(task_id, raw.subject, raw.token, raw.deliveries))
        if bad:
            await self._terminate(bad, "not a task id")
        return good

    async def _terminate(self, raws: Sequence[_Raw], reason: str) -> None:
        now = repr(self._clock.now())
        by_subject: dict[str, list[str | bytes]] = defaultdict(list)
        for raw in raws:
            by_subject[raw.subject] += (raw.entry_id, raw.task_id)
        for subject, pairs in by_subject.items():
            keys = [self._keys.stream(subject), self._keys.dead(subject)]
            async with self._guard("terminate"):
                await Scripts.run(
                    self._link, "stream_terminate", keys, [self._group, reason, now, *pairs]
                )

    async def _settle(self, by_stream: dict[str, list[str]], idle_ms: int) -> None:
        for subject, ids in by_stream.items():
            args = [self._group, self._name, idle_ms, *ids]
            async with self._guard("settling deliveries"):
                await Scripts.run(self._link, "stream_settle", [self._keys.stream(subject)], args)

    def _guard(self, what: str, extra: float = 0.0) -> Guard:
        return self._transport.link.guard(what, extra)

    async def _hand_off(self) -> None:
        for stream, subject in self._streams.items():
            async with self._guard("handing off deliveries"):
                held = await self._client.xpending_range(
                    stream, self._group, "-", "+", 10_000, consumername=self._name
                )
            ids = [item["message_id"].decode() for item in held]
            if ids:
                await self._settle({subject: ids}, self._lease_ms)

    async def _trim(self, subjects: list[str]) -> None:
        now = self._clock.now()
        for subject in subjects:
            if self._trimmed.get(subject, 0.0) > now:
                continue
            self._trimmed[subject] = now + TRIM_INTERVAL
            async with self._guard("trimming a stream"):
                await Scripts.run(self._link, "stream_trim", [self._keys.stream(subject)], [])


class _Raw:
    """An entry as read, before its task id is checked."""

    __slots__ = ("deliveries", "entry_id", "subject", "task_id")

    def __init__(self, subject: str, entry_id: str, task_id: bytes, deliveries: int) -> None:
        self.subject = subject
        self.entry_id = entry_id
        self.task_id = task_id
        self.deliveries = deliveries

    @classmethod
    def of(cls, delivery: Delivery) -> _Raw:
        subject, _, entry_id = delivery.token.partition(" ")
        return cls(subject, entry_id, delivery.task_id.encode(), delivery.deliveries)

    @property
    def token(self) -> str:
        """The delivery token: the subject and the entry id (subjects hold no space)."""
        return f"{self.subject} {self.entry_id}"


def _by_stream(deliveries: Sequence[Delivery]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for delivery in deliveries:
        subject, _, entry_id = delivery.token.partition(" ")
        grouped[subject].append(entry_id)
    return grouped


def _entry_task(fields: dict[bytes, bytes]) -> bytes:
    """The task id an entry's fields name: field ``i``, or the id of an envelope in field
    ``t`` (written before ids, ADR 0023); empty if they name none."""
    found = fields.get(b"i")
    if found is not None or b"t" not in fields:
        return found or b""
    try:
        envelope = loads(fields[b"t"])
    except InvalidInput:
        return b""
    task_id = envelope.get("id") if isinstance(envelope, dict) else None
    return task_id.encode() if isinstance(task_id, str) else b""


def _task_id(raw: bytes) -> str | None:
    """The task id an entry names, or None if it names none (empty, or not UTF-8)."""
    try:
        return raw.decode() or None
    except UnicodeDecodeError:
        return None


def _group_raws(raws: Sequence[_Raw]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for raw in raws:
        grouped[raw.subject].append(raw.entry_id)
    return grouped


_TRANSPORT: type[Transport] = RedisTransport
