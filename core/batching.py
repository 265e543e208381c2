"""Natural batching: calls made in the same turn of the event loop share one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Collects single items into batches for one batch call, one batch in flight at a time.

    Under light load a batch holds one item and adds no delay; under heavy load the
    items that arrive while a batch is in flight go together in the next one.
    """

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], max_size: int = 1000
    ) -> None:
        self._flush = flush
        self._max_size = max_size
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Add ``item`` to the next batch and return its result (or raise its error)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    @property
    def idle(self) -> bool:
        """True when nothing is pending or in flight."""
        return self._drainer is None and not self._pending

    async def _drain(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # let callers in this turn of the loop join the batch
                batch, self._pending = (
                    self._pending[: self._max_size],
                    self._pending[self._max_size :],
                )
                await self._run(batch)
        finally:
            self._drainer = None

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if len(results) != len(batch):
            broken = RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
            for _, future in batch:
                if not future.done():
                    future.set_exception(broken)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
