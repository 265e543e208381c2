"""The NATS transport against a server it does not control: restarts, stalls, duplicates.

Each test starts a private ``nats-server -js`` with a file store in its own folder, so it
may stop and restart it. Waits are bounded polls, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from atp.core.clock import SystemClock
from atp.core.errors import BackendUnavailable
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.plugins import PluginManager
from atp.core.ports import Consumer, Delivery, Transport
from atp.plugins.nats.transport import message_id
from tests.integration.nats._support import SETTINGS, private_url, stored_messages
from tests.services import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def server(private_server: Callable[..., ServerProcess]) -> ServerProcess:
    return private_server("nats")


@pytest.fixture
async def transport(
    plugin_manager: PluginManager, server: ServerProcess
) -> AsyncIterator[Transport]:
    url = private_url(server.url, publish_timeout="1s", connect_timeout="1s")
    transport = plugin_manager.make_transport(url, SETTINGS, SystemClock())
    yield transport
    await transport.close()


def tasks(count: int, start: int = 0) -> list[Task]:
    now = time.time()
    return [Task(new_id(now), "jobs.work", {"n": start + n}, run_at=now) for n in range(count)]


async def drain(consumer: Consumer, want: set[str], timeout: float) -> list[Delivery]:
    """Fetch and ack until every id in ``want`` came or ``timeout`` passed."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while not want <= {d.task_id for d in got} and time.monotonic() < deadline:
        try:
            batch = await consumer.fetch(100, 0.5)
        except BackendUnavailable:
            await asyncio.sleep(0.2)
            continue
        got += batch
        await consumer.ack(batch)
    return got


async def test_a_restarted_server_loses_no_accepted_task(
    transport: Transport, server: ServerProcess
) -> None:
    consumer = await transport.consume("jobs.work", "workers")
    received: list[Delivery] = []
    stop = asyncio.Event()
    reader = asyncio.create_task(keep_fetching(consumer, received, stop))
    accepted: list[str] = []
    restart: asyncio.Task[ServerProcess] | None = None
    during = after = 0
    while after < 10:
        if len(accepted) >= 250 and restart is None:
            restart = asyncio.create_task(asyncio.to_thread(server.restart))
        batch = tasks(25, len(accepted))
        underway = restart is not None and not restart.done()
        try:
            await transport.publish(batch)
            accepted += [task.id for task in batch]
        except BackendUnavailable:
            await asyncio.sleep(0.1)
        during += underway
        after += restart is not None and restart.done()
    stop.set()
    await reader
    got = await drain(consumer, set(accepted) - {d.task_id for d in received}, 20.0)
    missing = set(accepted) - {d.task_id for d in received + got}
    assert during >= 1, "the restart was over before a publish saw it"
    assert not missing, f"{len(missing)} of {len(accepted)} accepted tasks lost over the restart"


async def keep_fetching(consumer: Consumer, received: list[Delivery], stop: asyncio.Event) -> None:
    """Fetch and ack until ``stop``, riding out the outage as a worker does."""
    while not stop.is_set():
        try:
            batch = await consumer.fetch(100, 0.2)
            received += batch  # before the ack: an ack cut off may still have landed
            await consumer.ack(batch)
        except BackendUnavailable:
            await asyncio.sleep(0.1)


async def test_a_consumer_resumes_by_itself_after_a_restart(
    transport: Transport, server: ServerProcess
) -> None:
    consumer = await transport.consume(">", "workers")
    first = tasks(10)
    await transport.publish(first)
    assert len(await drain(consumer, {t.id for t in first}, 10.0)) == 10
    await asyncio.to_thread(server.restart)
    later = tasks(10, 10)
    for _ in range(50):  # the producer reconnects too
        try:
            await transport.publish(later)
            break
        except BackendUnavailable:
            await asyncio.sleep(0.2)
    got = await drain(consumer, {t.id for t in later}, 15.0)
    assert {d.task_id for d in got} == {t.id for t in later}


async def test_a_publish_the_server_does_not_ack_raises(
    transport: Transport, server: ServerProcess
) -> None:
    await transport.publish(tasks(1))  # connected and provisioned
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="not confirmed"):
            await transport.publish(tasks(5))
        assert time.monotonic() - started < 5.0
    finally:
        server.resume()
    await asyncio.to_thread(server.stop)
    with pytest.raises(BackendUnavailable):
        await transport.publish(tasks(5))


async def test_duplicate_publishes_of_one_task_are_dropped_by_the_server(
    transport: Transport, server: ServerProcess
) -> None:
    consumer = await transport.consume(">", "workers")
    [task] = tasks(1)
    retry = task.replace(attempt=1, run_at=task.run_at + 5)
    await transport.publish([task, task])
    await transport.publish([task])
    await transport.publish([retry])
    got = await drain(consumer, {task.id}, 5.0)
    got += await consumer.fetch(10, 1.0)
    assert [(d.task_id, d.deliveries) for d in got] == [(task.id, 1), (task.id, 1)]
    stored = await stored_messages(server.url, transport.config.stream)  # type: ignore[attr-defined]
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in stored] == [
        message_id(task),
        message_id(retry),
    ]


async def test_a_closing_consumer_gives_back_what_it_holds_at_once(
    transport: Transport,
) -> None:
    leaving = await transport.consume("jobs.>", "workers")
    staying = await transport.consume("jobs.>", "workers")
    sent = tasks(3)
    await transport.publish(sent)
    held = await drain_without_ack(leaving, 3)
    await leaving.close()
    started = time.monotonic()
    again = await drain_without_ack(staying, 3)
    assert time.monotonic() - started < SETTINGS.lease / 2, "waited for the ack wait"
    assert {d.task_id for d in again} == {d.task_id for d in held} == {t.id for t in sent}
    assert {d.deliveries for d in again} == {2}
    await staying.ack(again)


async def drain_without_ack(consumer: Consumer, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + 5.0
    while len(got) < count and time.monotonic() < deadline:
        got += await consumer.fetch(count - len(got), 0.5)
    assert len(got) == count, f"{len(got)} of {count} deliveries"
    return got
