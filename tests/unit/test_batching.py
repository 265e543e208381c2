import asyncio

import pytest

from atp.core.batching import Batcher, GroupCommit


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


class Committer:
    """A flush answering each item doubled, that a test can hold open or make fail."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def flush(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [item * 2 for item in items]


Held = tuple[Committer, GroupCommit[int, int], "asyncio.Future[list[int]]"]


async def in_flight(first_items: list[int], max_size: int = 1000) -> Held:
    """A GroupCommit whose first call, of ``first_items``, is held open in its flush."""
    committer = Committer()
    committer.gate = asyncio.Event()
    commit = GroupCommit(committer.flush, max_size=max_size)
    first = asyncio.ensure_future(commit.run(first_items))
    await turns(lambda: bool(committer.calls))
    return committer, commit, first


async def test_a_lone_call_runs_at_once_with_its_own_items():
    committer = Committer()
    commit = GroupCommit(committer.flush)
    assert await commit.run([1, 2]) == [2, 4]
    assert await commit.run([3]) == [6]
    assert committer.calls == [[1, 2], [3]]


async def test_calls_arriving_during_a_flush_share_the_next_and_get_their_own_results():
    committer, commit, first = await in_flight([1])
    later = [asyncio.ensure_future(commit.run([n, n + 100])) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert committer.calls == [[1]]
    committer.gate.set()
    assert await first == [2]
    assert [await call for call in later] == [[4, 204], [6, 206], [8, 208]]
    assert committer.calls == [[1], [2, 102, 3, 103, 4, 104]]


async def test_a_group_holds_at_most_max_size_items_unless_one_call_is_larger():
    committer, commit, first = await in_flight([0], max_size=3)
    calls = [asyncio.ensure_future(commit.run(items)) for items in ([1, 2], [3], [4, 5, 6, 7])]
    await asyncio.sleep(0)
    committer.gate.set()
    await asyncio.gather(first, *calls)
    assert committer.calls == [[0], [1, 2, 3], [4, 5, 6, 7]]


async def test_a_failed_group_fails_each_of_its_callers_and_the_next_still_runs():
    committer, commit, first = await in_flight([0], max_size=2)
    failing = [asyncio.ensure_future(commit.run([n])) for n in (1, 2)]
    after = asyncio.ensure_future(commit.run([3]))
    await asyncio.sleep(0)
    committer.fail = RuntimeError("store down")
    committer.gate.set()
    with pytest.raises(RuntimeError):
        await first
    committer.fail = None
    for call in failing:
        with pytest.raises(RuntimeError, match="store down"):
            await call
    assert await after == [6]


async def test_a_waiter_cancelled_before_its_group_starts_is_left_out():
    committer, commit, first = await in_flight([1])
    gone, kept = asyncio.ensure_future(commit.run([2])), asyncio.ensure_future(commit.run([3]))
    await asyncio.sleep(0)
    gone.cancel()
    committer.gate.set()
    assert await first == [2]
    assert await kept == [6]
    assert committer.calls == [[1], [3]]
    assert gone.cancelled()


async def test_a_cancelled_lone_caller_does_not_stall_those_waiting_behind_it():
    committer, commit, first = await in_flight([1])
    waiting = asyncio.ensure_future(commit.run([2]))
    await asyncio.sleep(0)
    first.cancel()
    await turns(lambda: len(committer.calls) == 2)
    committer.gate.set()
    assert await waiting == [4]
