"""Natural batching: items added while a flush is in flight share the next one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Batcher", "GroupCommit"]

log = logging.getLogger("atp.batching")

T = TypeVar("T")
R = TypeVar("R")


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


Waiter = tuple[list[T], "asyncio.Future[list[R]]"]
"""A waiting caller's items and the future its results go to."""


class GroupCommit(Generic[T, R]):
    """Runs ``flush(items) -> results`` (one result per item, in order) one call at a
    time, for callers that each need their own results: the calls that arrive while one
    is in flight go together in the next, as a database's group commit does.

    A lone caller runs its own call at once: no task, no future, no added delay. One that
    waits gets its slice of the results, or the exception of the call its items went
    in. A waiter cancelled before its group starts is left out of it.
    """

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[list[R]]], max_size: int = 1000
    ) -> None:
        self._flush = flush
        self._max_size = max_size
        self._busy = False
        self._waiting: list[Waiter[T, R]] = []
        self._group: asyncio.Task[None] | None = None
        """The group in flight, held so the event loop does not drop its task."""

    async def run(self, items: list[T]) -> list[R]:
        """The results of ``items``, flushed now or with the next group."""
        if self._busy:
            future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
            self._waiting.append((items, future))
            return await future
        self._busy = True
        try:
            return await self._flush(items)
        finally:
            self._next()

    def _next(self) -> None:
        """Start the next group of waiters, or become idle."""
        group: list[Waiter[T, R]] = []
        size = 0
        while self._waiting:
            items, future = self._waiting[0]
            if group and size + len(items) > self._max_size:
                break
            del self._waiting[0]
            if not future.done():  # cancelled while waiting: never sent
                group.append((items, future))
                size += len(items)
        if not group:
            self._busy, self._group = False, None
            return
        self._group = asyncio.get_running_loop().create_task(self._run_group(group))

    async def _run_group(self, group: list[Waiter[T, R]]) -> None:
        try:
            results = await self._flush([item for items, _ in group for item in items])
        except asyncio.CancelledError:  # the loop is closing: so are its callers
            for _, future in group:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        else:
            start = 0
            for items, future in group:
                if not future.done():
                    future.set_result(results[start : start + len(items)])
                start += len(items)
        finally:
            self._next()
