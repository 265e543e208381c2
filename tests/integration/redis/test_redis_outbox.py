"""A producer when its Redis goes away (ADR 0043): the publish fails fast without an outbox,
and with one, nothing is lost or duplicated across a SIGKILL of the server.

Each test starts its own redis-server (AOF, appendfsync always, for the restart) to kill,
pause and restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from atp.core.errors import BackendUnavailable
from atp.core.model import TaskRecord
from atp.core.settings import Settings
from atp.sdk import Client, SyncClient
from atp.sdk.client import Published
from tests.services import ServerProcess

pytestmark = pytest.mark.integration

PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")
TIMEOUT = 1.0
"""The URL's ``socket_timeout``: how long one store call may take."""
BOUND = 15.0
"""Generous: a failing publish must end well within this, not hang."""
TASKS = 1000
PRODUCERS = 4


def settings(server: ServerProcess, outbox: str = "") -> Settings:
    url = f"{server.url}?prefix=outbox&socket_timeout={TIMEOUT}"
    return Settings(store=url, transport=url, outbox=outbox)


async def fails_fast(client: Client) -> float:
    """Seconds a publish took to raise BackendUnavailable."""
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(client.publish("jobs.x", 1), BOUND * 2)
    return time.monotonic() - started


async def test_a_killed_server_fails_a_publish_fast(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis")
    connected = Client.connect(settings=settings(server))
    try:
        await connected.publish("jobs.x", 0)
        server.kill()
        fresh = Client.connect(settings=settings(server))
        try:
            for client in (connected, fresh):
                assert await fails_fast(client) < BOUND
        finally:
            await fresh.close()
    finally:
        await connected.close()


async def test_a_paused_server_fails_a_publish_within_its_timeout(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis")
    connected = Client.connect(settings=settings(server))
    try:
        await connected.publish("jobs.x", 0)
        server.pause()  # connections stay open; nothing answers
        fresh = Client.connect(settings=settings(server))
        try:
            for client in (connected, fresh):
                assert await fails_fast(client) < BOUND
        finally:
            await fresh.close()
        server.resume()
        assert not (await connected.publish("jobs.x", 2)).in_outbox
    finally:
        server.resume()
        await connected.close()


async def test_a_sync_client_fails_fast_on_a_paused_server(
    private_server: Callable[..., ServerProcess],
) -> None:
    server = private_server("redis")
    with SyncClient.connect(settings=settings(server)) as client:
        client.publish("jobs.x", 0)
        server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                client.publish("jobs.x", 1)
            assert time.monotonic() - started < BOUND
        finally:
            server.resume()


async def test_the_store_killed_mid_publish_loses_and_duplicates_nothing(
    private_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = private_server("redis", *PERSISTENT)
    shared = settings(server, outbox=str(tmp_path / "outbox.db"))
    clients = [Client.connect(settings=shared), Client.connect(settings=shared)]  # one file
    accepted: list[Published] = []
    try:
        producers = [
            asyncio.create_task(_produce(clients[p % 2], p, accepted)) for p in range(PRODUCERS)
        ]
        await _until(lambda: len(accepted) >= TASKS // 3)
        server.kill()
        await asyncio.sleep(0.5)
        server.start()  # the same port and data directory
        await asyncio.gather(*producers)
        assert len(accepted) == TASKS
        assert any(p.in_outbox for p in accepted), "the kill came too late for the outbox"

        await _until_drained(clients)
        ids, keys, numbers = await _stored(clients[0])
        assert sorted(ids) == sorted(p.id for p in accepted)  # none missing, none extra
        assert len(set(ids)) == len(ids) == TASKS  # none twice
        assert sorted(numbers) == list(range(TASKS))  # each task's content once
        given = sorted(k for k in keys if k is not None and k.startswith("job-"))
        assert given == sorted(f"job-{n}" for n in range(0, TASKS, 2))  # each key once
        assert sum((await clients[0].counts()).values()) == TASKS
        for client in clients:
            assert client.outbox is not None
            assert await client.outbox.rejected() == []
    finally:
        for client in clients:
            await client.close()


async def _produce(client: Client, producer: int, accepted: list[Published]) -> None:
    """Publish this producer's share one at a time, a few in flight across producers."""
    for n in range(producer, TASKS, PRODUCERS):
        key = f"job-{n}" if n % 2 == 0 else None  # half with a key of their own
        accepted.append(await client.publish("jobs.work", {"n": n}, idempotency_key=key))
        await asyncio.sleep(0.002)


async def _until(done: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _until_drained(clients: list[Client], within: float = 60.0) -> None:
    """Until the shared outbox is empty: the clients' couriers deliver it on their own."""
    outbox = clients[0].outbox
    assert outbox is not None
    deadline = time.monotonic() + within
    while await outbox.pending():
        assert time.monotonic() < deadline, f"{await outbox.pending()} never delivered"
        await asyncio.sleep(0.1)


async def _stored(client: Client) -> tuple[list[str], list[str | None], list[int]]:
    """Every task of the test: ids, idempotency keys and payload numbers."""
    records: list[TaskRecord] = []
    cursor: str | None = None
    while True:
        page = await client.list(subject="jobs.work", cursor=cursor, limit=1000)
        records += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    ids = [r.id for r in records]
    keys = [r.task.idempotency_key for r in records]
    return ids, keys, [cast(dict[str, int], r.task.payload)["n"] for r in records]
