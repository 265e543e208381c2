"""Flow control on a TestPlatform (memory ledger, ManualClock): what workers admit and hold."""

from __future__ import annotations

import itertools

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import KeyActive
from atp.core.flow.admission import REFRESH
from atp.core.model import State
from atp.sdk import App
from atp.sdk.testing import TestPlatform

START = 1_750_000_000.0


class Ledger:
    """What the handlers saw: how many ran at once per key, and when each started."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.starts: list[float] = []
        self.payloads: list[int] = []


@pytest.fixture
def seen() -> Ledger:
    return Ledger()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def app(seen: Ledger, clock: ManualClock) -> App:
    app = App()

    @app.task("sync.customer")
    async def sync(key: str, n: int = 0) -> None:
        seen.running[key] = seen.running.get(key, 0) + 1
        seen.most[key] = max(seen.most.get(key, 0), seen.running[key])
        seen.payloads.append(n)
        seen.starts.append(clock.now())
        try:
            await clock.sleep(2)
        finally:
            seen.running[key] -= 1

    @app.task("api.call")
    async def call() -> None:
        seen.starts.append(clock.now())

    return app


async def test_a_key_without_a_limit_runs_one_task_at_a_time(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, clock=clock) as tp:
        ids = [
            (await tp.client.publish("sync.customer", {"key": "c1"}, concurrency_key="c1")).id
            for _ in range(5)
        ]
        other = await tp.client.publish("sync.customer", {"key": "c2"}, concurrency_key="c2")
        await tp.run_until_idle()
        records = [await tp.get(i) for i in [*ids, other.id]]
    assert {r.state for r in records} == {State.SUCCEEDED}
    assert seen.most == {"c1": 1, "c2": 1}
    assert {r.task.attempt for r in records} == {1}  # holding back spent no attempt


async def test_a_key_limit_set_at_run_time_lets_that_many_run(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, clock=clock) as tp:
        await tp.client.set_limit("c*", key=True, concurrency=3)
        await tp.advance(REFRESH)
        for _ in range(9):
            await tp.client.publish("sync.customer", {"key": "c1"}, concurrency_key="c1")
        await tp.run_until_idle()
    assert seen.most == {"c1": 3}


async def test_a_rate_limit_spaces_starts_without_spending_attempts(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, clock=clock) as tp:
        await tp.client.set_limit("api.*", rate="2/s")
        await tp.advance(REFRESH)  # every worker reads the rules within a second
        ids = [(await tp.client.publish("api.call")).id for _ in range(10)]
        await tp.run_until_idle()
        records = [await tp.get(i) for i in ids]
    assert {r.state for r in records} == {State.SUCCEEDED}
    assert {r.task.attempt for r in records} == {1}
    starts = sorted(seen.starts)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.5 - 1e-6
    assert starts[-1] - starts[0] < 4.5 + 1.0  # held back no longer than the rate demands


async def test_pause_holds_tasks_and_resume_runs_every_one(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, clock=clock) as tp:
        assert await tp.client.pause("sync.*")
        await tp.advance(REFRESH)
        ids = [(await tp.client.publish("sync.customer", {"key": "p"})).id for _ in range(4)]
        await tp.run_until_idle(max_time=60)
        assert seen.payloads == []
        assert {(await tp.get(i)).state for i in ids} == {State.SCHEDULED}
        assert await tp.client.resume("sync.*") == 4
        await tp.run_until_idle()
        records = [await tp.get(i) for i in ids]
    assert {r.state for r in records} == {State.SUCCEEDED}
    assert {r.task.attempt for r in records} == {1}


async def test_debounce_runs_once_with_the_last_payload(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, clock=clock) as tp:
        published = [
            await tp.client.publish(
                "sync.customer", {"key": "d", "n": n}, idempotency_key="d", debounce=5
            )
            for n in range(100)
        ]
        await tp.run_until_idle()
        records = [await tp.get(p.id) for p in published]
    assert seen.payloads == [99]
    assert [r.state for r in records] == [State.CANCELLED] * 99 + [State.SUCCEEDED]
    assert published[-1].replaced == published[-2].id


async def test_unique_refuses_while_active_and_allows_once_done(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, clock=clock) as tp:
        first = await tp.client.publish(
            "sync.customer", {"key": "u"}, idempotency_key="u", unique=True, delay=10
        )
        with pytest.raises(KeyActive) as caught:
            await tp.client.publish("sync.customer", {"key": "u"}, idempotency_key="u", unique=True)
        assert caught.value.conflicts[0].task_id == first.id
        await tp.run_until_idle()
        again = await tp.client.publish(
            "sync.customer", {"key": "u"}, idempotency_key="u", unique=True
        )
        assert again.created
        assert again.id != first.id


async def test_a_crashed_workers_slot_comes_back_within_a_lease(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, workers=0, clock=clock) as tp:
        doomed = await tp.start_worker(name="doomed", concurrency=4)
        await tp.client.publish("sync.customer", {"key": "k", "n": 1}, concurrency_key="k")
        await tp.advance(0.5)  # it runs, holding the slot
        second = await tp.client.publish("sync.customer", {"key": "k", "n": 2}, concurrency_key="k")
        await tp.advance(1)
        assert seen.payloads == [1]  # the second waits for the slot
        await doomed.crash()
        crashed_at = clock.now()
        await tp.start_worker(name="survivor")
        await tp.run_until_idle()
        record = await tp.get(second.id)
    assert record.state is State.SUCCEEDED
    assert record.task.attempt == 1
    assert record.finished_at is not None
    assert record.finished_at - crashed_at < tp.settings.lease + tp.settings.reap_interval + 5


async def test_a_task_whose_slot_is_full_waits_in_the_store_from_its_publish(
    app: App, seen: Ledger, clock: ManualClock
) -> None:
    async with TestPlatform(app, workers=0, clock=clock) as tp:
        ids = [
            (await tp.client.publish("sync.customer", {"key": "w"}, concurrency_key="w")).id
            for _ in range(5)
        ]
        states = [(await tp.get(i)).state for i in ids]
        assert states == [State.READY] + [State.SCHEDULED] * 4  # never handed to the transport
        assert (await tp.client.limits()).waiting == {"k:w": 4}
        await tp.start_worker()
        await tp.run_until_idle()
        records = [await tp.get(i) for i in ids]
    assert {r.state for r in records} == {State.SUCCEEDED}
    assert {r.task.attempt for r in records} == {1}
    assert seen.most == {"w": 1}
