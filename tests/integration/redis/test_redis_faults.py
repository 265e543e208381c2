"""Redis going away: unconfirmed publishes raise, and everything resumes on its own when
the server comes back. Each test starts its own redis-server with AOF (appendfsync
always), since a restart of a Redis without persistence loses its data by definition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from atp.core.clock import SystemClock
from atp.core.errors import AtpError, BackendUnavailable
from atp.core.ids import new_id
from atp.core.model import State, Task
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from tests.services import ServerProcess

pytestmark = pytest.mark.integration

PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


def short(url: str) -> Settings:
    return Settings(
        store=url,
        transport=url,
        lease=2.0,
        heartbeat=0.5,
        leader_ttl=2.0,
        ready_timeout=5.0,
        reap_interval=0.5,
        forward_interval=0.05,
        concurrency=16,
    )


async def test_unconfirmed_publish_raises_and_a_consumer_resumes_alone(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis", *PERSISTENT)
    url = f"{server.url}?prefix=faults"
    transport = make_plugin_manager().make_transport(url, short(url), SystemClock())
    platform = Platform.build(short(url))
    try:
        consumer = await transport.consume("jobs.>", "g")
        await transport.publish([_task("jobs.one")])
        await consumer.ack(await _fetch_until(consumer, 1, 5.0))
        server.stop()
        with pytest.raises(BackendUnavailable):
            await transport.publish([_task("jobs.one")])
        with pytest.raises(BackendUnavailable):
            await TaskService(platform).publish([PublishRequest("jobs.one", 1)])
        with pytest.raises(BackendUnavailable):
            await consumer.fetch(1, 0.1)
        server.start()
        [published] = await TaskService(platform).publish([PublishRequest("jobs.one", 2)])
        got = await _fetch_until(consumer, 1, 10.0)
        assert [d.task_id for d in got] == [published.id]
        await consumer.ack(got)
    finally:
        await transport.close()
        await platform.close()


async def test_a_hung_server_fails_each_call_within_its_timeout(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis")
    url = f"{server.url}?prefix=hung&socket_timeout=0.5"
    manager, clock = make_plugin_manager(), SystemClock()
    store = manager.make_store(url, short(url), clock)
    transport = manager.make_transport(url, short(url), clock)
    try:
        consumer = await transport.consume("jobs.>", "g")
        await store.counts()  # connected before the server hangs
        server.pause()
        calls = [store.counts(), transport.publish([_task("jobs.one")]), consumer.fetch(1, 0.2)]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match="no answer within"):
                await call
            assert time.monotonic() - started < 2.0, "a hung server held a call past its bound"
        server.resume()
        assert await store.counts() == {}
    finally:
        server.resume()
        await transport.close()
        await store.close()


async def test_commands_start_no_task_of_their_own(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis")
    store = make_plugin_manager().make_store(
        f"{server.url}?prefix=tasks", Settings(), SystemClock()
    )
    loop = asyncio.get_running_loop()
    started: list[object] = []
    default = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started.append(coro)
        if default is not None:
            return default(loop, coro, **kwargs)  # type: ignore[return-value]
        return asyncio.Task(coro, loop=loop, **kwargs)

    try:
        await store.counts()
        loop.set_task_factory(counting)
        for _ in range(50):
            await store.counts()
    finally:
        loop.set_task_factory(default)
        await store.close()
    assert started == [], "redis-py wrapped commands in tasks (asyncio.wait_for)"


def _task(subject: str) -> Task:
    now = time.time()
    return Task(new_id(now), subject, payload=1, run_at=now, created_at=now)


async def test_a_dropped_connection_is_retried_without_an_error(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis")
    url = f"{server.url}?prefix=dropped"
    platform = Platform.build(short(url))
    killer = aioredis.Redis.from_url(server.url)
    try:
        service = TaskService(platform)
        await service.publish([PublishRequest("jobs.one", 1)])
        own = await killer.client_id()
        for client in await killer.client_list():
            if int(client["id"]) != own:
                await killer.client_kill_filter(_id=int(client["id"]))
        [published] = await service.publish([PublishRequest("jobs.one", 2)])
        assert published.created
        assert sum((await platform.store.counts()).values()) == 2
    finally:
        await killer.aclose()
        await platform.close()


async def test_restart_mid_run_loses_no_accepted_task(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis", *PERSISTENT)
    url = f"{server.url}?prefix=restart"
    platform = Platform.build(short(url))
    app = App("restart")

    @app.task("jobs.work")
    async def work(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    stop = asyncio.Event()
    loops = [
        asyncio.create_task(Worker(platform, app.registry).run(stop)),
        asyncio.create_task(Scheduler(platform).run(stop)),
    ]
    service = TaskService(platform)
    accepted: list[str] = []
    try:
        for batch in range(30):
            if batch == 10:
                server.stop()
            if batch == 15:
                server.start()
            try:
                published = await service.publish(
                    [PublishRequest("jobs.work", batch * 10 + n, delay=n * 0.05) for n in range(10)]
                )
            except AtpError:
                continue  # not accepted: the producer knows and may try again
            accepted += [p.id for p in published]
            await asyncio.sleep(0.05)
        assert len(accepted) >= 200
        records = await _wait_finished(platform, accepted, 45.0)
        assert {r.state for r in records} == {State.SUCCEEDED}
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
        await platform.close()


async def _fetch_until(consumer, count: int, timeout: float):  # type: ignore[no-untyped-def]
    got: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            got += await consumer.fetch(count - len(got), 0.5)
        except BackendUnavailable:
            await asyncio.sleep(0.2)
    return got


async def _wait_finished(platform: Platform, ids: list[str], timeout: float) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = await platform.store.get(ids)
        except AtpError:
            records = []
        if records and all(r is not None and r.state is State.SUCCEEDED for r in records):
            return records
        if time.monotonic() > deadline:
            states = [r.state if r else None for r in records]
            raise AssertionError(f"not all tasks finished: {states}")
        await asyncio.sleep(0.2)
