"""The Redis Streams transport: a stream per subject, a consumer group per atp group.

- publish: one script call per subject ``XADD``s its tasks and notes the subject in the
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

from atp.core.codec import encode_task, loads, task_from_stored_dict
from atp.core.errors import AtpError, BackendUnavailable, InvalidInput
from atp.core.model import Task
from atp.core.ports import Capabilities, Clock, Consumer, Delivery, Transport
from atp.core.subjects import compile_pattern, validate_pattern, validate_subject
from atp.plugins.redis._connection import Link, RedisUrl, Scripts, translate
from atp.plugins.redis.keys import TransportKeys

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
    """Moves READY envelopes through Redis Streams; shared by every process on the server."""

    def __init__(self, url: RedisUrl, clock: Clock, lease: float = 30.0) -> None:
        if not lease > 0:
            raise InvalidInput(f"redis transport: lease must be greater than 0, got {lease!r}")
        self.clock = clock
        self.lease = lease
        self.keys = TransportKeys(url.prefix)
        self.link = Link(url)
        self.capabilities = Capabilities(
            delay=False, deduplication=False, lease_extension=True, dead_letters=True,
            durable=True, lease_recovery=True, shared=True, lease=lease,
        )  # fmt: skip

    async def publish(self, tasks: Sequence[Task]) -> None:
        """``XADD`` every task to its subject's stream in one pipeline; return once the
        server confirmed each. InvalidInput, publishing none, for a bad subject."""
        if not tasks:
            return
        by_subject: dict[str, list[bytes]] = defaultdict(list)
        for task in tasks:
            by_subject[task.subject].append(encode_task(task))
        for subject in by_subject:
            validate_subject(subject)
        calls = [
            ("stream_publish", [self.keys.stream(subject), self.keys.subjects], [subject, *bodies])
            for subject, bodies in by_subject.items()
        ]
        with translate("publish"):
            await Scripts.run_many(self.link.client, calls)

    async def consume(self, pattern: str, group: str) -> Consumer:
        """A consumer of ``group`` over every subject matching ``pattern``, new ones too."""
        validate_pattern(pattern)
        if not isinstance(group, str) or not group:
            raise InvalidInput(f"group must be a non-empty string, got {group!r}")
        consumer = RedisConsumer(self, pattern, group)
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

    async def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Return expired deliveries taken over, else new ones, waiting up to ``timeout``.

        Raises BackendUnavailable if the consumer is closed or Redis does not answer.
        """
        if self.closed:
            raise BackendUnavailable("redis transport: fetch on a closed consumer")
        if max_items < 1:
            raise InvalidInput(f"max_items must be at least 1, got {max_items!r}")
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
        with translate("ack"):
            async with self._client.pipeline(transaction=False) as pipe:
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
        now = repr(self._clock.now())
        for subject, ids in _by_stream(deliveries).items():
            keys = [self._keys.stream(subject), self._keys.dead(subject)]
            with translate("terminate"):
                await Scripts.run(
                    self._client, "stream_terminate", keys, [self._group, reason, now, *ids]
                )

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
            with translate("subject discovery"):
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
            with translate("joining a stream"):
                await self._client.xgroup_create(stream, self._group, id="0", mkstream=True)
        except BackendUnavailable as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, max_items: int, wait: float) -> list[Delivery]:
        if not self._streams:
            if wait > 0:
                await self._clock.sleep(wait)
            return []
        block = int(wait * 1000) or None
        streams = dict.fromkeys(self._streams, ">")
        try:
            with translate("fetch"):
                reply = await self._client.xreadgroup(
                    self._group, self._name, streams, count=max_items, block=block
                )
        except BackendUnavailable as exc:
            self._check_groups(exc)
            return []
        found = [
            _Raw(self._streams[stream], entry_id.decode(), fields.get(b"t", b""), 1)
            for stream, entries in reply or ()
            for entry_id, fields in entries
        ]
        if len(found) > max_items:  # COUNT is per stream: give the surplus back at once
            await self._settle(_group_raws(found[max_items:]), self._lease_ms)
            self._reclaim_at = 0.0
        return await self._valid(found[:max_items])

    async def _reclaim(self, max_items: int) -> list[Delivery]:
        self._reclaim_at = self._clock.now() + min(self._transport.lease / 4, 1.0)
        found: list[_Raw] = []
        for stream, subject in list(self._streams.items()):
            want = max_items - len(found)
            if want <= 0:
                break
            args = [self._group, self._name, self._lease_ms, want]
            try:
                with translate("reclaiming expired deliveries"):
                    reply = await Scripts.run(self._client, "stream_reclaim", [stream], args)
            except BackendUnavailable as exc:
                self._check_groups(exc)
                break
            for i in range(0, len(reply), 3):
                found.append(_Raw(subject, reply[i].decode(), reply[i + 1], int(reply[i + 2])))
        return await self._valid(found)

    def _check_groups(self, exc: BackendUnavailable) -> None:
        """Re-raise ``exc`` unless the server lost our group (a restart without AOF, or a
        deleted stream): then join every stream again on the next fetch."""
        if "NOGROUP" not in str(exc):
            raise exc
        log.warning("redis consumer %s: consumer group gone, joining again", self._name)
        self._streams.clear()
        self._known = -1
        self._discover_at = 0.0

    async def _valid(self, raws: list[_Raw]) -> list[Delivery]:
        """Decode envelopes; a message that is not a task is terminated and logged.

        Entries are decoded as the store reads its own rows: ``stream_publish`` wrote
        checked envelopes, and the worker runs the store's copy of the task anyway.
        """
        good: list[Delivery] = []
        bad: list[Delivery] = []
        for raw in raws:
            token = f"{raw.subject} {raw.entry_id}"
            try:
                task = _decode(raw.envelope)
            except InvalidInput as exc:
                log.error("redis stream %s: entry %s is not a task, dropped: %s",
                          raw.subject, raw.entry_id, exc)  # fmt: skip
                bad.append(Delivery(Task(raw.entry_id, raw.subject), token, raw.deliveries))
                continue
            good.append(Delivery(task, token, raw.deliveries))
        if bad:
            await self.terminate(bad, "not a task envelope")
        return good

    async def _settle(self, by_stream: dict[str, list[str]], idle_ms: int) -> None:
        for subject, ids in by_stream.items():
            args = [self._group, self._name, idle_ms, *ids]
            with translate("settling deliveries"):
                await Scripts.run(self._client, "stream_settle", [self._keys.stream(subject)], args)

    async def _hand_off(self) -> None:
        for stream, subject in self._streams.items():
            with translate("handing off deliveries"):
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
            with translate("trimming a stream"):
                await Scripts.run(self._client, "stream_trim", [self._keys.stream(subject)], [])


class _Raw:
    """An entry as read, before its envelope is decoded."""

    __slots__ = ("deliveries", "entry_id", "envelope", "subject")

    def __init__(self, subject: str, entry_id: str, envelope: bytes, deliveries: int) -> None:
        self.subject = subject
        self.entry_id = entry_id
        self.envelope = envelope
        self.deliveries = deliveries


def _by_stream(deliveries: Sequence[Delivery]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for delivery in deliveries:
        subject, _, entry_id = delivery.token.partition(" ")
        grouped[subject].append(entry_id)
    return grouped


def _decode(envelope: bytes) -> Task:
    """The Task of a stream entry; InvalidInput unless it has the envelope's shape."""
    data = loads(envelope)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise InvalidInput("an entry must hold a task envelope with an id")
    try:
        task = task_from_stored_dict(data)
        validate_subject(task.subject)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"malformed task envelope: {exc!r}") from exc
    return task


def _group_raws(raws: Sequence[_Raw]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for raw in raws:
        grouped[raw.subject].append(raw.entry_id)
    return grouped


_TRANSPORT: type[Transport] = RedisTransport
