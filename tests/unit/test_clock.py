import asyncio
import contextvars
import time

import pytest

from atp.core.clock import POLLING, ManualClock, SystemClock
from atp.core.ports import Clock

START = 1_750_000_000.0


def test_both_clocks_are_clocks():
    assert isinstance(SystemClock(), Clock)
    assert isinstance(ManualClock(), Clock)


# -- SystemClock ------------------------------------------------------------------------


def test_system_clock_tells_wall_time():
    before = time.time()
    now = SystemClock().now()
    assert before <= now <= time.time()


async def test_system_clock_sleeps_and_tolerates_negative_seconds():
    clock = SystemClock()
    await clock.sleep(-1)
    start = time.monotonic()
    await clock.sleep(0.01)
    assert time.monotonic() - start >= 0.009


async def test_system_clock_wait_returns_whether_the_event_is_set():
    clock = SystemClock()
    event = asyncio.Event()
    assert await clock.wait(event, 0.01) is False
    event.set()
    assert await clock.wait(event, 10) is True
    later = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, later.set)
    assert await clock.wait(later, 10) is True


async def test_system_clock_call_later_fires_and_cancels():
    clock = SystemClock()
    fired: list[str] = []
    clock.call_later(0.0, lambda: fired.append("a"))
    clock.call_later(-5, lambda: fired.append("b")).cancel()
    await asyncio.sleep(0.02)
    assert fired == ["a"]


# -- ManualClock ------------------------------------------------------------------------


async def test_manual_time_stands_still_until_advanced():
    clock = ManualClock(start=START)
    assert clock.now() == START
    await asyncio.sleep(0)
    assert clock.now() == START
    await clock.advance(2.5)
    assert clock.now() == START + 2.5


async def test_sleep_returns_only_once_its_time_has_come():
    clock = ManualClock(start=START)
    sleeper = asyncio.create_task(clock.sleep(5))
    await clock.advance(3)
    assert not sleeper.done()
    await clock.advance(2)
    assert sleeper.done()


async def test_zero_and_negative_sleeps_return_without_advancing():
    clock = ManualClock(start=START)
    await clock.sleep(0)
    await clock.sleep(-1)
    assert clock.now() == START


async def test_sleepers_wake_in_deadline_order_seeing_their_own_deadline():
    clock = ManualClock(start=START)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now() - START))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in [("c", 3), ("a", 1), ("b", 2)]]
    await clock.advance(10)
    assert woke == [("a", 1), ("b", 2), ("c", 3)]
    assert clock.now() == START + 10
    await asyncio.gather(*tasks)


async def test_periodic_loops_tick_as_often_as_in_real_time():
    clock = ManualClock(start=START)
    ticks: list[float] = []

    async def loop() -> None:
        while True:
            await clock.sleep(1)
            ticks.append(clock.now() - START)

    task = asyncio.create_task(loop())
    await clock.advance(5)
    assert ticks == [1, 2, 3, 4, 5]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_wait_returns_true_when_the_event_is_set_first():
    clock = ManualClock(start=START)
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait(event, 10))
    await clock.settle()
    event.set()
    assert await waiter is True
    assert clock.now() == START
    assert await clock.wait(event, 0) is True


async def test_wait_returns_false_once_the_timeout_passes():
    clock = ManualClock(start=START)
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait(event, 10))
    await clock.advance(9.9)
    assert not waiter.done()
    await clock.advance(0.1)
    assert waiter.done()
    assert waiter.result() is False


async def test_call_later_fires_on_advance_and_not_after_cancel():
    clock = ManualClock(start=START)
    fired: list[float] = []
    clock.call_later(2, lambda: fired.append(clock.now() - START))
    cancelled = clock.call_later(1, lambda: fired.append(-1))
    cancelled.cancel()
    await clock.advance(1.5)
    assert fired == []
    await clock.advance(1)
    assert fired == [2]


async def test_a_cancelled_sleeper_does_not_disturb_the_others():
    clock = ManualClock(start=START)
    doomed = asyncio.create_task(clock.sleep(1))
    survivor = asyncio.create_task(clock.sleep(2))
    await clock.settle()
    doomed.cancel()
    await clock.advance(2)
    assert doomed.cancelled()
    assert survivor.done()


async def test_settle_lets_ready_work_finish_without_moving_time():
    clock = ManualClock(start=START, settle_rounds=5)
    steps: list[int] = []

    async def chain() -> None:
        for i in range(3):
            steps.append(i)
            await asyncio.sleep(0)

    task = asyncio.create_task(chain())
    await clock.settle()
    assert steps == [0, 1, 2]
    assert task.done()
    assert clock.now() == START


@pytest.mark.parametrize("seconds", [0, 0.001])
async def test_tiny_advances_still_settle(seconds):
    clock = ManualClock(start=START)
    done = asyncio.Event()
    asyncio.get_running_loop().call_soon(done.set)
    await clock.advance(seconds)
    assert done.is_set()


async def test_next_deadline_is_the_earliest_live_sleeper_or_timer():
    clock = ManualClock(start=START)
    assert clock.next_deadline() is None
    doomed = asyncio.create_task(clock.sleep(1))
    timer = clock.call_later(3, lambda: None)
    survivor = asyncio.create_task(clock.sleep(5))
    await clock.settle()
    assert clock.next_deadline() == START + 1
    doomed.cancel()
    await clock.settle()
    assert clock.next_deadline() == START + 3  # a cancelled sleeper no longer counts
    timer.cancel()
    assert clock.next_deadline() == START + 5
    await clock.jump(START + 5 - clock.now())
    assert survivor.done()
    assert clock.next_deadline() is None


async def test_next_deadline_can_leave_out_the_polls():
    clock = ManualClock(start=START)
    polling = contextvars.copy_context()
    polling.run(POLLING.set, True)
    poll = asyncio.create_task(clock.sleep(1), context=polling)
    own = asyncio.create_task(clock.sleep(4))
    await clock.settle()
    assert clock.next_deadline() == START + 1
    assert clock.next_deadline(polls=False) == START + 4
    own.cancel()
    await clock.settle()
    assert clock.next_deadline(polls=False) is None
    assert clock.next_deadline() == START + 1
    poll.cancel()
    await asyncio.gather(poll, own, return_exceptions=True)
