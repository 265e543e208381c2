"""Natural batching: items added in the same turn of the event loop share one flush."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Batcher"]

log = logging.getLogger("atp.batching")

T = TypeVar("T")


class Batcher(Generic[T]):
    """Collects items into batches for one flush call, one batch in flight at a time.

    Under light load a batch holds one item and adds no delay; under heavy load the
    items that arrive while a batch is in flight go together in the next one. Adding
    costs no future and no task per item: the flush acts on each item's result itself.
    A flush that raises is logged and its batch dropped, so flushes handle their errors.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], max_size: int = 1000) -> None:
        self._flush = flush
        self._max_size = max_size
        self._pending: list[T] = []
        self._drainer: asyncio.Task[None] | None = None

    def add(self, item: T) -> None:
        """Put ``item`` in the next batch."""
        self._pending.append(item)
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    @property
    def idle(self) -> bool:
        """True when nothing is pending or in flight."""
        return self._drainer is None and not self._pending

    async def join(self) -> None:
        """Return once everything added so far has been flushed."""
        while self._drainer is not None:
            await asyncio.shield(self._drainer)

    async def _drain(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # let callers in this turn of the loop join the batch
                batch = self._pending[: self._max_size]
                del self._pending[: self._max_size]
                try:
                    await self._flush(batch)
                except Exception:
                    log.exception("a flush of %d items failed; they were dropped", len(batch))
        finally:
            self._drainer = None
