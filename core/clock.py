"""The two clocks: the real one, and a controllable one for tests (plus a skewed view of
either, for a host whose clock is wrong).

Core never calls ``time.time()`` or a bare ``asyncio.sleep``: it asks its Clock, so a test
can drive the worker, the scheduler and the store through hours of time in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from contextvars import ContextVar

from atp.core.ports import Clock, Timer

__all__ = ["POLLING", "ManualClock", "SkewedClock", "SystemClock"]

POLLING: ContextVar[bool] = ContextVar("atp_clock_polling", default=False)
"""True in tasks whose waits are polls (looks for work that others' deadlines announce),
not deadlines of their own; a ManualClock can leave their wake-ups out of
``next_deadline``. Set it in the context a task is created in: its children inherit it."""


class SystemClock:
    """Wall-clock time and real sleeps."""

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(seconds, 0.0), callback)

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        try:
            await asyncio.wait_for(event.wait(), max(timeout, 0.0))
        except TimeoutError:
            return False
        return True


class ManualClock:
    """A clock that moves only when a test calls ``advance``.

    Sleepers wake in deadline order; ``advance`` stops at each deadline and lets the
    event loop run the woken tasks before it moves on, so periodic loops tick as often
    as they would in real time.
    """

    def __init__(self, start: float = 1_750_000_000.0, settle_rounds: int = 20) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None], bool]] = []
        """(deadline, order, future, whether a poll waits on it)"""
        self._seq = itertools.count()
        self._settle_rounds = settle_rounds

    def now(self) -> float:
        return self._now

    def call_later(self, seconds: float, callback: Callable[[], object]) -> _ManualTimer:
        timer = _ManualTimer(callback)
        future = timer.future
        self._push(self._now + max(seconds, 0.0), future)
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._push(self._now + seconds, future)
        await future

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(timeout))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
        return event.is_set()

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper on the way."""
        target = self._now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()
            await self.settle()
        self._now = target
        await self.settle()

    async def jump(self, seconds: float) -> None:
        """Move time forward at once: every sleeper due by then wakes once, at the new time.

        Much faster than ``advance`` over long spans, since periodic loops tick once
        instead of at every interval on the way; use it when nothing needs those ticks.
        """
        await self.settle()
        self._now += max(seconds, 0.0)
        self._wake_due()
        await self.settle()

    def next_deadline(self, *, polls: bool = True) -> float | None:
        """When the earliest sleeper or timer wakes; None when nothing waits on this clock.
        ``polls=False`` leaves out those of tasks running with ``POLLING`` set.

        A test harness walks time from one such deadline to the next (``jump`` there)
        instead of in fixed steps.
        """
        sleepers = self._sleepers
        while sleepers and sleepers[0][2].done():  # cancelled: its sleeper gave up
            heapq.heappop(sleepers)
        if polls or not sleepers:
            return sleepers[0][0] if sleepers else None
        own = (at for at, _, future, poll in sleepers if not poll and not future.done())
        return min(own, default=None)

    async def settle(self) -> None:
        """Let the event loop run everything that is ready, without moving time."""
        for _ in range(self._settle_rounds):
            await asyncio.sleep(0)

    def _push(self, deadline: float, future: asyncio.Future[None]) -> None:
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future, POLLING.get()))

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future, _ = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


class _ManualTimer:
    """A ManualClock ``call_later``: a future that fires the callback when woken."""

    def __init__(self, callback: Callable[[], object]) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.future.add_done_callback(lambda f: None if f.cancelled() else callback())

    def cancel(self) -> None:
        self.future.cancel()


class SkewedClock:
    """Another clock's time plus ``offset`` seconds: a host whose clock is wrong, in tests
    and chaos. Setting ``offset`` is a jump. Sleeps and timers are the other clock's, as a
    real jump leaves the event loop's monotonic time alone."""

    def __init__(self, clock: Clock, offset: float = 0.0) -> None:
        self.clock = clock
        self.offset = offset

    def now(self) -> float:
        return self.clock.now() + self.offset

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        return self.clock.call_later(seconds, callback)

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        return await self.clock.wait(event, timeout)
