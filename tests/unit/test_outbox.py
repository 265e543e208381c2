"""The producer's outbox (ADR 0043): a real SQLite file in tmp_path, a memory store that
goes away and comes back, and the Client publishing through both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from atp.core.errors import BackendUnavailable, InvalidInput
from atp.core.model import Task
from atp.core.platform import Platform
from atp.core.ports import Created
from atp.core.service import Published, PublishRequest
from atp.plugins.memory.store import MemoryStore
from atp.sdk import Client, Settings, SyncClient
from atp.sdk._courier import LOOK_INTERVAL, RETRY_FIRST
from atp.sdk.outbox import Outbox
from atp.sdk.testing import TestPlatform


class FlakyStore(MemoryStore):
    """A memory store that refuses creates as an unreachable server would while ``down``;
    with ``lose_answers`` it writes the tasks first, as a server that dies before it
    answers does, so the producer cannot know they were created."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lose_answers = False
        self.creates = 0

    async def create(self, tasks: Sequence[Task], **options: Any) -> list[Created]:
        self.creates += 1
        if self.lose_answers:
            await super().create(tasks, **options)
            raise BackendUnavailable("store: the connection broke before the answer")
        if self.down:
            raise BackendUnavailable("store unreachable")
        return await super().create(tasks, **options)


@pytest.fixture
async def tp(tmp_path: Path) -> AsyncIterator[TestPlatform]:
    settings = Settings(outbox=str(tmp_path / "outbox.db"))
    async with TestPlatform(settings=settings, workers=0, scheduler=False) as platform:
        platform.platform.store = FlakyStore()
        yield platform


@pytest.fixture
async def client(tp: TestPlatform) -> AsyncIterator[Client]:
    client = Client(tp.platform)  # built after the store was swapped
    yield client
    await client.close()


def store_of(tp: TestPlatform) -> FlakyStore:
    store = tp.platform.store
    assert isinstance(store, FlakyStore)
    return store


def outbox_of(client: Client) -> Outbox:
    assert client.outbox is not None
    return client.outbox


async def stored(client: Client) -> dict[str, str | None]:
    """Every task in the store: id -> idempotency key."""
    page = await client.list(limit=1000)
    assert page.next_cursor is None
    return {r.id: r.task.idempotency_key for r in page.items}


async def test_a_publish_the_store_cannot_take_is_kept_and_delivered_later(tp, client):
    store_of(tp).down = True
    published = await client.publish("orders.close", {"order": 1}, delay="30m")
    assert published.in_outbox
    assert published.created
    assert published.run_at == tp.clock.now() + 1800
    [entry] = await outbox_of(client).entries()
    assert entry.task_id == published.id
    assert entry.request.idempotency_key == published.id  # no key given: its id is its key
    assert await stored(client) == {}

    store_of(tp).down = False
    await client.flush_outbox()  # or the courier did, woken by the publish
    assert await stored(client) == {published.id: published.id}
    record = await client.get(published.id)
    assert record.task.run_at == published.run_at
    assert await outbox_of(client).pending() == 0


async def test_a_publish_the_store_answers_is_as_without_an_outbox(tp, client):
    published = await client.publish("orders.close", 1)
    assert not published.in_outbox
    assert await stored(client) == {published.id: None}  # no key: its id is chosen here
    keyed = await client.publish("orders.close", 2, idempotency_key="order-2")
    assert (await client.get(keyed.id)).task.idempotency_key == "order-2"


@pytest.mark.parametrize("delay", [-1.0, float("nan")])
async def test_a_bad_delay_is_refused_as_without_an_outbox(tp, client, delay):
    with pytest.raises(InvalidInput, match="delay"):
        await client.publish_many([PublishRequest("orders.close", 1, delay=delay)])


async def test_a_publish_whose_answer_was_lost_is_created_once(tp, client):
    store_of(tp).lose_answers = True
    published = await client.publish("orders.close", 1)
    assert published.in_outbox
    assert list(await stored(client)) == [published.id]  # the store had it after all

    store_of(tp).lose_answers = False
    await client.flush_outbox()
    assert list(await stored(client)) == [published.id]
    assert await outbox_of(client).pending() == 0


async def test_without_an_outbox_an_unreachable_store_raises():
    async with TestPlatform(workers=0, scheduler=False) as tp:
        tp.platform.store = store = FlakyStore()
        store.down = True
        client = Client(tp.platform)
        with pytest.raises(BackendUnavailable):
            await client.publish("orders.close", 1)
        assert client.outbox is None
        await client.close()


async def test_while_the_outbox_holds_publishes_new_ones_go_behind_them(tp, client):
    store_of(tp).down = True
    first = await client.publish("orders.close", 1)
    await _courier_failed(store_of(tp))  # it now waits on the clock, which stands still
    store_of(tp).down = False
    second = await client.publish("orders.close", 2)
    assert second.in_outbox, "a publish overtook one kept before it"
    with pytest.raises(InvalidInput):
        await client.publish("orders..bad", 3)  # still refused at once
    assert [e.task_id for e in await outbox_of(client).entries()] == [first.id, second.id]

    await client.flush_outbox()
    assert await outbox_of(client).pending() == 0
    third = await client.publish("orders.close", 3)
    assert not third.in_outbox
    assert set(await stored(client)) == {first.id, second.id, third.id}


async def test_a_publish_the_store_refuses_at_delivery_is_rejected_and_others_pass(tp, client):
    outbox = outbox_of(client)
    good = outbox.prepare([PublishRequest("orders.close", 1), PublishRequest("orders.close", 2)])
    bad = outbox.prepare([PublishRequest("orders..close", 3)])
    await outbox.put([good[0], *bad, good[1]])

    assert await client.flush_outbox() == 2
    assert set(await stored(client)) == {good[0].task_id, good[1].task_id}
    [rejected] = await outbox.rejected()
    assert rejected.task_id == bad[0].task_id
    assert rejected.error is not None
    assert rejected.error.startswith("InvalidInput")
    assert await outbox.pending() == 0
    assert await client.flush_outbox() == 0  # never retried


async def test_an_unreachable_store_keeps_what_was_not_delivered(tp, client):
    store_of(tp).down = True
    kept = await client.publish_many([client.request("orders.close", n) for n in range(3)])
    assert all(p.in_outbox for p in kept)
    with pytest.raises(BackendUnavailable):
        await client.flush_outbox()
    assert await outbox_of(client).pending() == 3


async def test_the_courier_delivers_alone_once_the_store_is_back(tp, client):
    store_of(tp).down = True
    published = await client.publish("orders.close", 1)
    await tp.clock.advance(RETRY_FIRST * 3)
    assert await stored(client) == {}
    store_of(tp).down = False
    await _until(tp, lambda: outbox_of(client).pending(), 0, LOOK_INTERVAL * 4)
    assert list(await stored(client)) == [published.id]


async def test_one_process_delivers_a_shared_outbox_at_a_time(tp, tmp_path):
    path = tmp_path / "outbox.db"
    first, second = Outbox(path, tp.clock), Outbox(path, tp.clock)
    await first.put(first.prepare([PublishRequest("orders.close", 1)]))
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(requests: list[PublishRequest]) -> list[Published]:
        entered.set()
        await release.wait()
        return [Published(str(r.task_id), True, 0.0) for r in requests]

    draining = asyncio.create_task(first.drain(slow))
    await entered.wait()
    assert await second.drain(slow) is None  # the first holds the lease
    release.set()
    assert await draining == 1
    assert await second.drain(slow) == 0  # released: the second may deliver now
    await first.close()
    await second.close()


async def test_kept_publishes_survive_the_process(tp, client, tmp_path):
    store_of(tp).down = True
    published = await client.publish("orders.close", 1)
    await client.close()
    store_of(tp).down = False

    again = Client(tp.platform)
    try:
        assert await again.flush_outbox() == 1
        assert list(await stored(again)) == [published.id]
    finally:
        await again.close()


async def _until(tp: TestPlatform, look: Any, want: object, within: float) -> None:
    for _ in range(int(within / 0.5)):
        if await look() == want:
            return
        await tp.clock.advance(0.5)
    assert await look() == want


async def _courier_failed(store: FlakyStore) -> None:
    """Wait (in real time: the outbox works in a thread) until the courier tried and failed."""
    for _ in range(500):
        if store.creates >= 2:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the courier never tried to deliver")


async def test_a_chosen_task_id_is_used_checked_and_never_created_twice(tp, client):
    task_id = outbox_of(client).prepare([PublishRequest("orders.close", 1)])[0].task_id
    assert task_id is not None
    [first] = await client.publish_many([PublishRequest("orders.close", 1, task_id=task_id)])
    [again] = await client.publish_many([PublishRequest("orders.close", 1, task_id=task_id)])
    assert (first.id, first.created) == (task_id, True)
    assert (again.id, again.created) == (task_id, False)
    with pytest.raises(InvalidInput, match="task_id"):
        await client.publish_many([PublishRequest("orders.close", 1, task_id="not-an-id")])


async def test_a_delivery_cut_short_leaves_no_lease_behind(tp, tmp_path):
    path = tmp_path / "outbox.db"
    first, second = Outbox(path, tp.clock), Outbox(path, tp.clock)
    [request] = first.prepare([PublishRequest("orders.close", 1)])
    await first.put([request])
    entered = asyncio.Event()

    async def hangs(requests: list[PublishRequest]) -> list[Published]:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def answers(requests: list[PublishRequest]) -> list[Published]:
        return [Published(str(r.task_id), True, 0.0) for r in requests]

    draining = asyncio.create_task(first.drain(hangs))
    await entered.wait()
    draining.cancel()  # a client closed mid-delivery
    await asyncio.gather(draining, return_exceptions=True)
    assert await second.drain(answers) == 1  # at once, not after the lease ran out
    assert await first.pending() == 0
    await first.close()
    await second.close()


def test_a_sync_client_keeps_and_flushes_as_the_async_one(tmp_path):
    settings = Settings(store="memory://", transport="memory://", outbox=str(tmp_path / "o.db"))
    platform = Platform.build(settings)
    platform.store = store = FlakyStore()
    store.down = True
    with SyncClient(lambda: Client(platform, owns_platform=True)) as client:
        published = client.publish("orders.close", 1)
        assert published.in_outbox
        store.down = False
        client.flush_outbox()  # or its courier did
        assert client.get(published.id).id == published.id
