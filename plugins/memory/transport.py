"""The in-process transport: one priority queue per subscription, leases on the injected clock.

It serves ``memory://`` for ``atp dev`` and ``atp.sdk.testing``. Everything runs in one event
loop, so every method is atomic by construction. Waiting goes through ``Clock.wait``, so a
ManualClock drives leases, delays and fetch timeouts deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from atp.core.errors import BackendUnavailable, InvalidInput
from atp.core.model import Task
from atp.core.ports import Capabilities, Clock, Consumer, Delivery, Transport
from atp.core.subjects import compile_pattern, validate_pattern, validate_subject

__all__ = ["DeadLetter", "MemoryConsumer", "MemoryTransport"]

_Entry = tuple[int, int, Task, int]
"""A queued message: (-priority, publish sequence, task, deliveries so far)."""

_MAX_ROUTES = 10_000
_MAX_DEAD = 10_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message a consumer terminated, kept for inspection (the newest 10,000)."""

    task: Task
    reason: str
    group: str
    pattern: str
    deliveries: int
    at: float


class _Held:
    """One in-flight delivery: the message, who holds it, and until when."""

    __slots__ = ("consumer", "entry", "expires_at")

    def __init__(self, entry: _Entry, consumer: MemoryConsumer, expires_at: float) -> None:
        self.entry = entry
        self.consumer = consumer
        self.expires_at = expires_at


class _Subscription:
    """The queue that the consumers of one (group, pattern) share.

    ``held`` is ordered by expiry: the lease is the same for every delivery and the clock
    only moves forward, so a new or renewed lease always expires last.
    """

    def __init__(self, group: str, pattern: str, lease: float, tokens: Iterator[int]) -> None:
        self.group = group
        self.pattern = pattern
        self.matches: Callable[[str], bool] = compile_pattern(pattern)
        self.lease = lease
        self.ready: list[_Entry] = []
        self.delayed: list[tuple[float, _Entry]] = []
        self.held: OrderedDict[str, _Held] = OrderedDict()
        self.changed = asyncio.Event()
        self.consumers: set[MemoryConsumer] = set()
        self._tokens = tokens

    def push(self, entry: _Entry) -> None:
        heapq.heappush(self.ready, entry)
        self.changed.set()

    def adopt(self, entries: list[_Entry]) -> None:
        self.ready.extend(entries)
        heapq.heapify(self.ready)
        self.changed.set()

    def take(self, consumer: MemoryConsumer, max_items: int, now: float) -> list[Delivery]:
        """Lease up to ``max_items`` messages to ``consumer``, highest priority first."""
        if self.delayed or self.held:
            self._release_due(now)
        ready, held = self.ready, self.held
        found: list[Delivery] = []
        expires_at = now + self.lease
        while ready and len(found) < max_items:
            neg_priority, seq, task, deliveries = heapq.heappop(ready)
            entry = (neg_priority, seq, task, deliveries + 1)
            token = str(next(self._tokens))
            held[token] = _Held(entry, consumer, expires_at)
            found.append(Delivery(task.id, task.subject, token, deliveries + 1))
        return found

    def next_timer(self) -> float | None:
        """When the next delayed message is due or the next lease expires, if ever."""
        times = [self.delayed[0][0]] if self.delayed else []
        if self.held:
            times.append(next(iter(self.held.values())).expires_at)
        return min(times, default=None)

    def settle(self, token: str, consumer: MemoryConsumer) -> _Held | None:
        """Remove and return the delivery ``token`` if ``consumer`` holds it."""
        held = self.held.get(token)
        if held is None or held.consumer is not consumer:
            return None
        del self.held[token]
        return held

    def renew(self, token: str, consumer: MemoryConsumer, now: float) -> None:
        held = self.held.get(token)
        if held is not None and held.consumer is consumer:
            held.expires_at = now + self.lease
            self.held.move_to_end(token)

    def requeue(self, entry: _Entry, due: float | None) -> None:
        if due is None:
            self.push(entry)
        else:
            heapq.heappush(self.delayed, (due, entry))
            self.changed.set()  # waiting fetchers shorten their wait to this due time

    def give_back(self, consumer: MemoryConsumer) -> None:
        """Return everything ``consumer`` holds to the queue at once."""
        tokens = [token for token, held in self.held.items() if held.consumer is consumer]
        for token in tokens:
            self.push(self.held.pop(token).entry)

    def _release_due(self, now: float) -> None:
        delayed, held = self.delayed, self.held
        while delayed and delayed[0][0] <= now:
            heapq.heappush(self.ready, heapq.heappop(delayed)[1])
        while held:
            token, first = next(iter(held.items()))
            if first.expires_at > now:
                break
            del held[token]
            heapq.heappush(self.ready, first.entry)


class MemoryConsumer:
    """One consumer of a subscription; its consumers share the queue, each message to one."""

    def __init__(self, transport: MemoryTransport, subscription: _Subscription) -> None:
        self._transport = transport
        self._sub = subscription
        self._clock = transport.clock
        self.closed = False

    async def fetch(self, max_items: int, timeout: float) -> list[Delivery]:
        """Return ready deliveries at once, else wait up to ``timeout`` for the first.

        Raises BackendUnavailable if the consumer is closed; a fetch waiting when the
        consumer closes returns an empty list.
        """
        if self.closed:
            raise BackendUnavailable("memory transport: fetch on a closed consumer")
        if max_items < 1:
            raise InvalidInput(f"max_items must be at least 1, got {max_items!r}")
        sub, clock = self._sub, self._clock
        deadline = clock.now() + timeout
        while True:
            now = clock.now()
            found = sub.take(self, max_items, now)
            if found or self.closed or now >= deadline:
                return found
            timer = sub.next_timer()
            wake = deadline if timer is None else min(deadline, timer)
            sub.changed.clear()
            await clock.wait(sub.changed, wake - now)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove the deliveries for good; unknown or stale tokens are ignored."""
        for delivery in deliveries:
            self._sub.settle(delivery.token, self)

    async def nack(self, deliveries: Sequence[Delivery], delay: float = 0.0) -> None:
        """Queue the deliveries again, fetchable after ``delay`` seconds of clock time."""
        due = self._clock.now() + delay if delay > 0 else None
        for delivery in deliveries:
            held = self._sub.settle(delivery.token, self)
            if held is not None:
                self._sub.requeue(held.entry, due)

    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        """Restart the lease of each delivery this consumer still holds."""
        now = self._clock.now()
        for delivery in deliveries:
            self._sub.renew(delivery.token, self, now)

    async def terminate(self, deliveries: Sequence[Delivery], reason: str) -> None:
        """Drop the deliveries into the dead letters; they are never delivered again."""
        now = self._clock.now()
        for delivery in deliveries:
            held = self._sub.settle(delivery.token, self)
            if held is not None:
                self._transport._bury(held.entry, self._sub, reason, now)

    async def close(self) -> None:
        """Stop fetching and return what this consumer holds to the queue at once.

        Nobody else can ack those deliveries, so waiting for their lease would only delay
        them. Closing twice is harmless.
        """
        if self.closed:
            return
        self.closed = True
        self._sub.consumers.discard(self)
        self._sub.give_back(self)
        self._sub.changed.set()


class MemoryTransport:
    """An in-process Transport: no durability, no other processes, every queue in memory.

    Each (group, pattern) is one subscription with its own copy of every matching
    message, ordered by priority then publish order. A message published while no
    subscription matches waits in a backlog for the first one that does.
    """

    def __init__(self, clock: Clock, lease: float = 30.0) -> None:
        if not lease > 0:
            raise InvalidInput(f"memory transport: lease must be greater than 0, got {lease!r}")
        self.clock = clock
        self.lease = lease
        self.capabilities = Capabilities(
            delay=True,
            deduplication=False,
            lease_extension=True,
            dead_letters=True,
            durable=False,
            lease_recovery=True,
            shared=False,
            lease=lease,
        )
        self._subs: dict[tuple[str, str], _Subscription] = {}
        self._routes: dict[str, tuple[_Subscription, ...]] = {}
        # by task id: a task published again while unrouted is kept once, not piled up
        self._backlog: dict[str, _Entry] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=_MAX_DEAD)
        self._seq = itertools.count()
        self._tokens = itertools.count(1)
        self._closed = False

    async def publish(self, tasks: Sequence[Task]) -> None:
        """Queue every task for each subscription matching its subject; all or nothing.

        Raises InvalidInput, publishing none of the batch, if a subject is invalid.
        """
        self._check_open()
        routes = [self._route(task.subject) for task in tasks]
        for task, subs in zip(tasks, routes, strict=True):
            entry = (-task.priority, next(self._seq), task, 0)
            if not subs:
                self._backlog.setdefault(task.id, entry)
            for sub in subs:
                sub.push(entry)

    async def consume(self, pattern: str, group: str) -> Consumer:
        """Return a new consumer of the subscription (``group``, ``pattern``).

        The subscription lives until the transport closes, so messages published while a
        group has no consumer wait for its next one.
        """
        self._check_open()
        validate_pattern(pattern)
        if not isinstance(group, str) or not group:
            raise InvalidInput(f"group must be a non-empty string, got {group!r}")
        sub = self._subs.get((group, pattern))
        if sub is None:
            sub = self._subscribe(group, pattern)
        consumer = MemoryConsumer(self, sub)
        sub.consumers.add(consumer)
        return consumer

    async def close(self) -> None:
        """Close every consumer and drop every queue; later calls raise BackendUnavailable."""
        self._closed = True
        for sub in self._subs.values():
            for consumer in list(sub.consumers):
                await consumer.close()
        self._subs.clear()
        self._routes.clear()
        self._backlog.clear()

    def dead_letters(self) -> list[DeadLetter]:
        """Return the terminated messages, oldest first."""
        return list(self._dead)

    def pending(self) -> int:
        """Count the messages not yet acked or terminated, in every queue and the backlog."""
        queued = sum(len(s.ready) + len(s.delayed) + len(s.held) for s in self._subs.values())
        return queued + len(self._backlog)

    def _bury(self, entry: _Entry, sub: _Subscription, reason: str, now: float) -> None:
        """Keep a terminated message among the dead letters."""
        _, _, task, deliveries = entry
        self._dead.append(DeadLetter(task, reason, sub.group, sub.pattern, deliveries, now))

    def _subscribe(self, group: str, pattern: str) -> _Subscription:
        sub = _Subscription(group, pattern, self.lease, self._tokens)
        self._subs[(group, pattern)] = sub
        self._routes.clear()
        adopted = [e for e in self._backlog.values() if sub.matches(e[2].subject)]
        if adopted:
            for entry in adopted:
                del self._backlog[entry[2].id]
            sub.adopt(adopted)
        return sub

    def _route(self, subject: str) -> tuple[_Subscription, ...]:
        subs = self._routes.get(subject)
        if subs is None:
            validate_subject(subject)
            subs = tuple(sub for sub in self._subs.values() if sub.matches(subject))
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()
            self._routes[subject] = subs
        return subs

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable("memory transport is closed")


_TRANSPORT: type[Transport] = MemoryTransport
