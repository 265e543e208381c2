"""The forwarder (the watchdog): moves due SCHEDULED tasks to READY and publishes them."""

from __future__ import annotations

import heapq
import itertools
import logging

from atp.core.dispatch import Dispatcher
from atp.core.errors import AtpError
from atp.core.model import Task
from atp.core.ports import Clock, TaskStore
from atp.core.scheduler.component import Component, Leadership, NotLeading
from atp.core.settings import Settings

__all__ = ["HELD_BATCHES", "Forwarder"]

log = logging.getLogger("atp.scheduler.forwarder")

HELD_BATCHES = 10
"""Batches of ``forward_batch`` the forwarder holds ahead of their due time at most."""


class Forwarder(Component):
    """Every ``forward_interval`` takes up to ``forward_batch`` tasks due within
    ``forward_horizon`` in one atomic store call, and publishes each at its ``run_at``
    (over a durable transport; over another, due tasks only).

    Taking ahead moves the store round trip and the batch's work off the due time: a
    task taken early is READY in the store but waits in a local timer, so it still runs
    no earlier than its ``run_at``, and the publish at that moment is the only work left.
    Tasks taken ahead carry a short stamp (``leader_ttl`` past the horizon), restamped
    ``ready_timeout`` ahead once published: a leader that dies holding them leaves them
    to the next leader's reaper about as soon as its forwarder would have found them.

    A failed publish puts its tasks (and all held) back to SCHEDULED, for the next look;
    a leader that stops hands back what it holds the same way; one that lost its lease
    publishes nothing more and drops them (the reaper has them). Nothing taken is lost.
    """

    name = "forwarder"

    def __init__(
        self,
        store: TaskStore,
        dispatcher: Dispatcher,
        clock: Clock,
        settings: Settings,
        *,
        durable: bool,
        leader: Leadership,
    ) -> None:
        """``durable``: the transport keeps what it was given across a process's death."""
        super().__init__(clock, settings.forward_interval, leader)
        self._store = store
        self._dispatcher = dispatcher
        self._batch = settings.forward_batch
        self._ready_timeout = settings.ready_timeout
        # Over a non-durable transport the reaper republishes every READY task stamped
        # before a leadership began, which would meet tasks taken ahead: take due ones only.
        self._horizon = settings.forward_horizon if durable else 0.0
        self._hold_stamp = settings.leader_ttl
        self._held: list[tuple[float, int, Task]] = []
        """Tasks taken ahead, by due time then the order they were taken in."""
        self._order = itertools.count()
        self._next_look = clock.now()

    async def tick(self) -> bool:
        await self._publish_due()
        if self._clock.now() < self._next_look:
            return False
        full = await self._take()
        await self._publish_due()
        return full

    def pause(self) -> float:
        """Until the next look, or the first held task's due time if that is sooner."""
        wake = self._next_look
        if self._held:
            wake = min(wake, self._held[0][0])
        return max(wake - self._clock.now(), 0.0)

    async def close(self) -> None:
        """Put the held tasks back to SCHEDULED for whoever leads next, while this process
        still leads; else drop them: they are READY, and the leader's reaper has them."""
        ids = [task.id for _, _, task in self._held]
        self._held.clear()
        if not ids:
            return
        try:
            self._fence()
            await self._store.release(ids, now=self._clock.now())
        except (NotLeading, AtpError) as exc:
            log.warning("left %d tasks taken ahead to the reaper: %s", len(ids), exc)

    async def _take(self) -> bool:
        """Take what is due within the horizon; True when a full batch came back."""
        now = self._clock.now()
        self._next_look = now + self._interval
        room = self._batch * HELD_BATCHES - len(self._held)
        if room <= 0:
            return False
        limit = min(self._batch, room)
        until = now + self._horizon
        stamp = until + (self._hold_stamp if self._horizon else self._ready_timeout)
        tasks = await self._store.take_due(
            now=until, limit=limit, ready_until=stamp, fence=self._fence()
        )
        for task in tasks:
            heapq.heappush(self._held, (task.run_at, next(self._order), task))
        full = len(tasks) >= limit
        if full:
            self._next_look = now  # more may be due: look again at once
        return full

    async def _publish_due(self) -> None:
        """Publish the held tasks now due, in batches of ``forward_batch``, while this
        process leads (one whose lease ran out must not race its successor)."""
        held, now = self._held, self._clock.now()
        if not held or held[0][0] > now:
            return
        try:
            self._fence()
        except NotLeading:
            await self.close()
            raise
        while held and held[0][0] <= now:
            await self._publish(_pop_due(held, self._batch, now))

    async def _publish(self, tasks: list[Task]) -> None:
        """Publish ``tasks``; if that fails, hand them and all held back to the store, so
        the next look takes them again rather than retrying at once."""
        try:
            await self._dispatcher.publish(tasks, release=False)
        except AtpError:
            self._held.extend((task.run_at, next(self._order), task) for task in tasks)
            await self.close()
            raise
        if self._horizon:
            await self._stamp([task.id for task in tasks])

    async def _stamp(self, ids: list[str]) -> None:
        """Stamp published tasks as a publish does; if that fails the short stamp stays,
        and the reaper may publish one of them once more (claims keep it to one run)."""
        try:
            await self._store.stamp_ready(ids, ready_until=self._clock.now() + self._ready_timeout)
        except AtpError as exc:
            log.warning("could not restamp %d published tasks: %s", len(ids), exc)


def _pop_due(held: list[tuple[float, int, Task]], limit: int, now: float) -> list[Task]:
    """Pop up to ``limit`` tasks due by ``now`` off the ``held`` heap, earliest first."""
    batch: list[Task] = []
    while held and held[0][0] <= now and len(batch) < limit:
        batch.append(heapq.heappop(held)[2])
    return batch
