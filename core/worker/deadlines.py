"""One timer for every attempt in flight, instead of a ``call_later`` per attempt.

Attempts are kept in a queue per timeout length: the clock only moves forward, so within
one length a later start always means a later deadline, and each queue is in deadline
order by construction. Adding and removing are O(1); one sweep task wakes at the
earliest head and expires what is due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from atp.core.ports import Clock

__all__ = ["Deadlines"]

T = TypeVar("T", bound=Hashable)

INF = float("inf")
IDLE_WAIT = 3600.0
"""Seconds the sweep sleeps when nothing is in flight (an add wakes it sooner)."""


class Deadlines(Generic[T]):
    """Calls ``expire(item)`` once an item's deadline passes, unless it was removed."""

    def __init__(self, clock: Clock, expire: Callable[[T], None]) -> None:
        self._clock = clock
        self._expire = expire
        self._queues: dict[float, dict[T, float]] = {}
        self._wake_at = INF
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def add(self, item: T, seconds: float) -> None:
        """Expire ``item`` ``seconds`` from now."""
        at = self._clock.now() + seconds
        self._queues.setdefault(seconds, {})[item] = at
        if at < self._wake_at:
            self._changed.set()

    def remove(self, item: T, seconds: float) -> None:
        """Forget ``item`` (its attempt ended); a no-op if it expired already."""
        queue = self._queues.get(seconds)
        if queue is not None:
            queue.pop(item, None)

    async def run(self) -> None:
        """Sweep until cancelled."""
        while True:
            self._changed.clear()
            self._wake_at = self.sweep(self._clock.now())
            wait = self._wake_at - self._clock.now() if self._wake_at != INF else IDLE_WAIT
            await self._clock.wait(self._changed, max(wait, 0.0))

    def sweep(self, now: float) -> float:
        """Expire every item due by ``now``; return the next deadline (inf if none)."""
        upcoming = INF
        for seconds, queue in list(self._queues.items()):
            while queue:
                item, at = next(iter(queue.items()))
                if at > now:
                    upcoming = min(upcoming, at)
                    break
                del queue[item]
                self._expire(item)
            if not queue:  # one-off timeout lengths must not pile up
                del self._queues[seconds]
        return upcoming
