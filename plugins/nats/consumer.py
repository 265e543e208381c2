"""One consumer of a durable JetStream pull consumer: batched fetch and JetStream's ack verbs.

Fetch pulls in two steps so that no message is taken that the caller did not ask for: a
``no_wait`` pull takes what is there (up to the batch) and ends at once; only if that was
nothing, a lingering pull for one message waits until the timeout, and once it arrives a
second ``no_wait`` pull fills the batch. Each pull carries its own reply subject, so the
status that ends it (404, 408) is matched to it.

A message's body is its task's id (ADR 0023); the envelope lives in the store. A body that
is a JSON object is an envelope published before that change, and its ``id`` is taken, so
an upgrade finds the messages already in the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Sequence

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from atp.core.errors import BackendUnavailable, InvalidInput
from atp.core.ports import Clock, Delivery
from atp.plugins.nats._link import Link, translated

__all__ = ["NatsConsumer", "task_id_of"]

log = logging.getLogger("atp.plugins.nats")

STATUS_GRACE = 0.5
"""Seconds past a pull's expiry (a no-wait pull's: at once) that its end status may take
to arrive."""
_ENDED = ("404", "408", "409")
MAX_HELD = 100_000
"""Unsettled deliveries a consumer remembers, to give them back when it closes."""


class NatsConsumer:
    """A member of the durable consumer ``name``; members of one group share its messages.

    Verbs map one to one: ``ack`` is ``+ACK``, ``nack(delay)`` is ``-NAK`` with a delay,
    ``keep_alive`` is ``+WPI`` (in progress: restarts the ack wait), ``terminate`` is
    ``+TERM``. Each call sends its batch and then waits one round trip, so on return the
    server has the verbs.
    """

    def __init__(self, link: Link, clock: Clock, name: str, pattern: str, group: str) -> None:
        self.name = name
        self.pattern = pattern
        self.group = group
        self._link = link
        self._clock = clock
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{link.config.stream}.{name}"
        self._strip = len(link.config.prefix) + 1  # "<prefix>." before each task subject
        self._inbox = ""
        self._sub: Subscription | None = None
        self._buffer: deque[Msg] = deque()
        self._held: dict[str, None] = {}
        """Tokens handed out by fetch and not yet settled, oldest first."""
        self._ended: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._pulls = itertools.count(1)
        self._verify = False
        self._epoch = 0
        self.closed = False

    async def open(self) -> NatsConsumer:
        """Provision the durable consumer and subscribe this member's inbox."""
        await self._link.ensure_consumer(self.name, self.pattern, self.group)
        self._epoch = self._link.epoch
        nc, _ = await self._link.client()
        self._inbox = nc.new_inbox()
        with translated(f"subscribing consumer {self.name!r}"):
            self._sub = await nc.subscribe(self._inbox + ".*", cb=self._on_message)
        return self

    async def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Return up to ``max_items`` deliveries, waiting up to ``timeout`` for the first.

        A message that names no task id is terminated and logged. A delivery that
        arrives after a cancelled fetch is kept for the next one. ``timeout`` 0 still
        waits the one round trip of a no-wait pull, so it takes what the stream holds.
        """
        if self.closed:
            raise BackendUnavailable(f"nats: fetch on closed consumer {self.name!r}")
        if max_items < 1:
            raise InvalidInput(f"max_items must be at least 1, got {max_items!r}")
        if self._verify or self._epoch != self._link.epoch:
            epoch = self._link.epoch
            await self._link.ensure_consumer(self.name, self.pattern, self.group)
            self._verify, self._epoch = False, epoch
        if not self._buffer:
            await self._pull(max_items, timeout)
        return await self._take(max_items)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove the deliveries for good; acking twice is harmless."""
        await self._settle(deliveries, b"+ACK", "ack")

    async def nack(self, deliveries: Sequence[Delivery], delay: float = 0.0) -> None:
        """Give the deliveries back, redelivered after ``delay`` seconds (server-timed)."""
        verb = b"-NAK"
        if delay > 0:
            verb += b" " + orjson.dumps({"delay": int(delay * 1e9)})
        await self._settle(deliveries, verb, "nak")

    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        """Restart each delivery's ack wait (JetStream's in-progress)."""
        await self._send_to([delivery.token for delivery in deliveries], b"+WPI", "in-progress")

    async def terminate(self, deliveries: Sequence[Delivery], reason: str) -> None:
        """Never deliver these messages again. JetStream keeps no copy; the reason is logged.

        (``+TERM`` with a reason needs NATS 2.10.4; a 2.9 server would take it for an ack
        of nothing, so the reason stays here.)
        """
        if deliveries:
            ids = ", ".join(d.task_id for d in deliveries[:10])
            log.warning("nats: terminating %d deliveries (%s): %s", len(deliveries), ids, reason)
        await self._settle(deliveries, b"+TERM", "term")

    async def close(self) -> None:
        """Stop fetching and give back at once what this consumer holds: messages pulled
        but never handed out, and deliveries handed out but not settled (nobody else can
        settle them, so waiting for their ack wait would only delay them).

        If the server cannot be reached they come back after their ack wait.
        """
        if self.closed:
            return
        self.closed = True
        unsettled = [m.reply for m in self._buffer] + list(self._held)
        self._buffer.clear()
        self._held.clear()
        try:
            nc, _ = await self._link.client()
            with translated(f"closing consumer {self.name!r}"):
                for token in unsettled:
                    await nc.publish(token, b"-NAK")
                if self._sub is not None:
                    await self._sub.unsubscribe()
        except BackendUnavailable as exc:  # they come back after their ack wait
            log.warning("nats: closing consumer %s: %s", self.name, exc)

    # -- pulling -------------------------------------------------------------------------

    async def _pull(self, max_items: int, timeout: float) -> None:
        if await self._request(max_items, None) or timeout <= 0:
            return
        if not await self._request(1, timeout):
            return
        if max_items > 1:
            await self._request(max_items - 1, None)

    async def _request(self, batch: int, expires: float | None) -> bool:
        """Send one pull and wait until it ended or filled; return whether anything came.

        ``expires`` None: a no-wait pull, which the server ends within a round trip. A
        pull that no status ends within STATUS_GRACE of its expiry makes the next fetch
        check the consumer (the server may have lost it).
        """
        nc, _ = await self._link.client()
        reply = f"{self._inbox}.{next(self._pulls)}"
        request: dict[str, object] = {"batch": batch}
        if expires is None:
            request["no_wait"] = True
        else:
            request["expires"] = max(int(expires * 1e9), 1_000_000)
        had = len(self._buffer)
        with translated(f"pulling from consumer {self.name!r}"):
            await nc.publish(self._next, orjson.dumps(request), reply)
        deadline = self._clock.now() + (expires or 0.0) + STATUS_GRACE
        while reply not in self._ended and len(self._buffer) - had < batch:
            self._changed.clear()
            left = deadline - self._clock.now()
            if left <= 0 or not await self._clock.wait(self._changed, left):
                self._verify = reply not in self._ended
                break
        self._note_end(self._ended.pop(reply, ""))
        return len(self._buffer) > had

    def _note_end(self, status: str) -> None:
        if status.startswith("409"):
            log.warning("nats: consumer %s refused a pull: %s", self.name, status)
            self._verify = True

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            if msg.reply.startswith("$JS.ACK."):  # anything else is not a delivery
                self._buffer.append(msg)
        elif status in _ENDED:
            description = msg.headers.get("Description", "") if msg.headers else ""
            self._ended[msg.subject] = f"{status} {description}"
            if len(self._ended) > 1000:  # ends of pulls nobody waits for any more
                self._ended.clear()
        self._changed.set()

    async def _take(self, max_items: int) -> list[Delivery]:
        found: list[Delivery] = []
        broken: list[str] = []
        while self._buffer and len(found) < max_items:
            msg = self._buffer.popleft()
            reply = msg.reply
            task_id = task_id_of(msg.data)
            if task_id is None:
                log.error("nats: %s on %s names no task id: %r", reply, msg.subject, msg.data[:80])
                broken.append(reply)
                continue
            found.append(Delivery(task_id, msg.subject[self._strip :], reply, _delivered(reply)))
            self._held[reply] = None
        if len(self._held) > MAX_HELD:  # never settled (a lost lease): long redelivered
            for token in list(itertools.islice(self._held, len(self._held) - MAX_HELD)):
                del self._held[token]
        if broken:
            await self._send_to(broken, b"+TERM", "term")
        return found

    async def _settle(self, deliveries: Sequence[Delivery], verb: bytes, what: str) -> None:
        tokens = [delivery.token for delivery in deliveries]
        for token in tokens:
            self._held.pop(token, None)
        await self._send_to(tokens, verb, what)

    async def _send_to(self, tokens: list[str], verb: bytes, what: str) -> None:
        if not tokens:
            return
        nc, _ = await self._link.client()
        action = f"{what} of {len(tokens)} deliveries"
        with translated(action):
            for token in tokens:
                await nc.publish(token, verb)
        await self._link.flush(action)


def task_id_of(body: bytes) -> str | None:
    """The task id a message carries: the body itself, or the ``id`` of a JSON envelope
    published before ADR 0023. None if it names none (empty, not UTF-8, no ``id``)."""
    if body[:1] == b"{":
        return _envelope_id(body)
    try:
        return body.decode() or None
    except UnicodeDecodeError:
        return None


def _envelope_id(body: bytes) -> str | None:
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    task_id = envelope.get("id") if isinstance(envelope, dict) else None
    return task_id if isinstance(task_id, str) and task_id else None


def _delivered(reply: str) -> int:
    """The delivery count in an ack subject: ``$JS.ACK.<stream>.<consumer>.<delivered>...``
    (or, with a domain and account hash, two tokens further)."""
    tokens = reply.split(".")
    try:
        return int(tokens[4] if len(tokens) == 9 else tokens[6])
    except (IndexError, ValueError):
        return 1
