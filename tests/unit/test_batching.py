import asyncio

from atp.core.batching import Batcher


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

    async def flush(self, items: list[int]) -> None:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail


async def test_a_lone_item_is_flushed_alone():
    recorder = Recorder()
    batcher = Batcher(recorder.flush)
    assert batcher.idle
    batcher.add(1)
    assert not batcher.idle
    await batcher.join()
    assert recorder.batches == [[1]]
    assert batcher.idle


async def test_items_of_one_turn_share_one_flush():
    recorder = Recorder()
    batcher = Batcher(recorder.flush)
    for i in range(5):
        batcher.add(i)
    await batcher.join()
    assert recorder.batches == [[0, 1, 2, 3, 4]]


async def test_items_arriving_during_a_flush_go_in_the_next_batch():
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    batcher = Batcher(recorder.flush)
    batcher.add(1)
    await turns(lambda: bool(recorder.batches))
    batcher.add(2)
    batcher.add(3)
    await asyncio.sleep(0)
    assert recorder.batches == [[1]]
    assert not batcher.idle
    recorder.gate.set()
    await batcher.join()
    assert recorder.batches == [[1], [2, 3]]
    assert batcher.idle


async def test_batches_are_capped_at_max_size():
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_size=2)
    for i in range(5):
        batcher.add(i)
    await batcher.join()
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_flush_drops_its_batch_and_the_next_batch_still_runs():
    recorder = Recorder(fail=RuntimeError("down"))
    batcher = Batcher(recorder.flush)
    batcher.add(1)
    await batcher.join()
    assert batcher.idle
    recorder.fail = None
    batcher.add(2)
    await batcher.join()
    assert recorder.batches == [[1], [2]]
