import asyncio

import pytest

from atp.core.batching import Batcher
from atp.core.errors import BackendUnavailable


async def turns(condition, limit: int = 50) -> None:
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.gate: asyncio.Event | None = None

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [item * 10 for item in items]


async def test_a_lone_item_is_flushed_alone():
    recorder = Recorder()
    batcher = Batcher(recorder.flush)
    assert batcher.idle
    assert await batcher.submit(1) == 10
    assert recorder.batches == [[1]]
    assert batcher.idle


async def test_items_of_one_turn_share_one_flush_and_get_their_own_results():
    recorder = Recorder()
    batcher = Batcher(recorder.flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1, 2, 3, 4]]


async def test_items_arriving_during_a_flush_go_in_the_next_batch():
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    batcher = Batcher(recorder.flush)
    first = asyncio.create_task(batcher.submit(1))
    await turns(lambda: bool(recorder.batches))
    assert recorder.batches == [[1]]
    later = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    assert not batcher.idle
    recorder.gate.set()
    assert await first == 10
    assert [await t for t in later] == [20, 30]
    assert recorder.batches == [[1], [2, 3]]
    assert batcher.idle


async def test_batches_are_capped_at_max_size():
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_size=2)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_flush_fails_every_item_of_its_batch_and_only_those():
    recorder = Recorder(fail=BackendUnavailable("down"))
    batcher = Batcher(recorder.flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, BackendUnavailable) for r in results)
    assert batcher.idle
    recorder.fail = None
    assert await batcher.submit(7) == 70


async def test_a_cancelled_submitter_does_not_break_the_batch():
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    batcher = Batcher(recorder.flush)
    doomed = asyncio.create_task(batcher.submit(1))
    kept = asyncio.create_task(batcher.submit(2))
    await turns(lambda: bool(recorder.batches))
    doomed.cancel()
    recorder.gate.set()
    assert await kept == 20
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_a_flush_returning_the_wrong_number_of_results_fails_its_submitters():
    async def short(items: list[int]) -> list[int]:
        return items[:1]

    batcher = Batcher(short)
    submits = asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    results = await asyncio.wait_for(submits, timeout=1.0)
    assert any(isinstance(r, Exception) for r in results)
