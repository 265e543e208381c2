"""``Courier``: a Client's publishes with an outbox (ADR 0043).

While the store answers, a publish goes straight to it, as without an outbox, except that
it carries a task id and an idempotency key chosen here (``Outbox.prepare``), so a try
whose outcome was unknown can be repeated as the same task. A publish refused with
BackendUnavailable is kept in the outbox and returned as accepted locally. While the
outbox holds publishes this process kept, new ones are validated and go behind them, so
they reach the store in the order they were made. A background task delivers the outbox:
at once when something is kept, then every ``RETRY_FIRST`` seconds doubling to
``RETRY_CAP`` while the store stays away, and every ``LOOK_INTERVAL`` when idle (for
what other processes on the same file left there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from atp.core.errors import BackendUnavailable
from atp.core.ports import Clock
from atp.core.service import Published, PublishRequest, TaskService
from atp.sdk.outbox import Outbox, keepable

__all__ = ["Courier"]

log = logging.getLogger("atp.outbox")

RETRY_FIRST = 0.5
"""Seconds before the first retry of a delivery that found the store away."""
RETRY_CAP = 15.0
"""The longest pause between two deliveries while the store stays away."""
LOOK_INTERVAL = 5.0
"""Seconds between an idle courier's looks into the outbox file."""


class Courier:
    """Publishes through ``tasks`` and, when the store is away, through ``outbox``."""

    def __init__(self, outbox: Outbox, tasks: TaskService, clock: Clock) -> None:
        self.outbox = outbox
        self._tasks = tasks
        self._clock = clock
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._backlog: bool | None = None  # None: not looked at yet
        self._kept = 0  # publishes kept by this process, ever
        self._flushing = asyncio.Lock()

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
        """Publish ``requests``; the store's answer, or accepted locally if it is away."""
        if not all(keepable(r) for r in requests):
            return await self._tasks.publish(requests)
        self._start()
        prepared = self.outbox.prepare(requests)
        if self._backlog is None:
            self._backlog = await self.outbox.pending() > 0
        if self._backlog:
            self._tasks.check(prepared)  # bad input is refused now, not at delivery
            return await self._keep(prepared)
        try:
            return await self._tasks.publish(prepared)
        except BackendUnavailable as exc:
            log.warning(
                "store unreachable, keeping %d publishes in %s: %s", len(prepared), self.outbox, exc
            )
            return await self._keep(prepared)

    async def flush(self) -> int:
        """Deliver the outbox now; return how many publishes the store took (0 if another
        process is delivering). BackendUnavailable if the store is still away."""
        async with self._flushing:
            kept = self._kept
            delivered = await self.outbox.drain(self._tasks.publish)
            if delivered is not None and kept == self._kept:
                self._backlog = False
            return delivered or 0

    async def close(self) -> None:
        """Stop delivering; what the outbox holds stays on disk for the next start."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        try:
            left = await self.outbox.pending()
        except BackendUnavailable:
            left = 0
        if left:
            log.warning(
                "%d publishes wait in %s: the next producer on it delivers them", left, self.outbox
            )
        await self.outbox.close()

    async def _keep(self, prepared: list[PublishRequest]) -> list[Published]:
        published = await self.outbox.put(prepared)
        self._kept += len(prepared)
        self._backlog = True
        self._wake.set()
        return published

    def _start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"atp-courier {self.outbox}")

    async def _run(self) -> None:
        pause = RETRY_FIRST
        while True:
            try:
                self._wake.clear()
                if self._backlog is not False or await self.outbox.pending():
                    await self.flush()
                pause = RETRY_FIRST
                await self._clock.wait(self._wake, LOOK_INTERVAL)
            except BackendUnavailable as exc:
                log.info(
                    "outbox %s: store still away, next try in %gs: %s", self.outbox, pause, exc
                )
                await self._clock.sleep(pause)
                pause = min(pause * 2, RETRY_CAP)
            except Exception:
                log.exception("outbox %s: delivery failed; next try in %gs", self.outbox, pause)
                await self._clock.sleep(pause)
                pause = min(pause * 2, RETRY_CAP)
