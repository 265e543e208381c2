"""A stored record that cannot be decoded is quarantined, never a stop (ADR 0027).

On real SQLite and real Redis, records are damaged behind the store's back (a raw SQL
UPDATE, a raw HSET): a retry policy whose NaN became null, and an envelope that is not
JSON. Every other task, of every subject, the poisoned one's included, still dispatches
and runs; get and list answer; the damaged tasks end DEAD with the reason, and purge
removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from atp.core.clock import ManualClock
from atp.core.codec import CORRUPT
from atp.core.errors import NotFound, StateConflict
from atp.core.ids import new_id
from atp.core.model import State, Task, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.ports import TaskQuery, TaskStore
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.plugins.redis.keys import StoreKeys
from atp.sdk.app import App
from atp.sdk.client import Client
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration

NAN_AS_NULL = '{"base": null, "factor": 2.0, "cap": 300.0, "jitter": true}'
"""A retry policy whose base was NaN: orjson wrote it as null."""
NOT_JSON = '{"created_at": 17'
SUBJECTS = ("a.one", "b.two", "poison.here")
TIMING: dict[str, Any] = {
    "lease": 5,
    "heartbeat": 1,
    "leader_ttl": 2,
    "reap_interval": 0.2,
    "forward_interval": 0.05,
    "drain_timeout": 2,
}


@dataclass
class Backend:
    settings: Settings
    damage: Callable[[str, str], Awaitable[None]]
    """Give a task's stored envelope the retry ``NAN_AS_NULL``, or make it ``NOT_JSON``,
    behind the store's back."""


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield _sqlite(tmp_path / "atp.db")
        return
    url = request.getfixturevalue("redis_url")
    prefix = unique("q")
    scoped = f"{url}{'&' if '?' in url else '?'}prefix={prefix}"
    raw = aioredis.Redis.from_url(url.split("?")[0])
    keys = StoreKeys(prefix)

    async def damage(task_id: str, how: str) -> None:
        key = keys.task(task_id)
        envelope = how
        if how == NAN_AS_NULL:
            stored = (await raw.hget(key, "t")).decode()
            envelope = stored[:-1] + ("," if stored != "{}" else "") + f'"retry":{how}}}'
        assert await raw.hset(key, "t", envelope) == 0  # it existed

    yield Backend(Settings(store=scoped, transport=scoped, coordinator=scoped, **TIMING), damage)
    await raw.aclose()


def _sqlite(path: Path) -> Backend:
    async def damage(task_id: str, how: str) -> None:
        with _connect(path) as conn:
            if how == NAN_AS_NULL:
                sql = "UPDATE tasks SET envelope = json_set(envelope, '$.retry', json(?))"
            else:
                sql = "UPDATE tasks SET envelope = ?"
            assert conn.execute(f"{sql} WHERE id = ?", (how, task_id)).rowcount == 1

    return Backend(Settings(store=f"sqlite:///{path}", **TIMING), damage)


@pytest.fixture
def app() -> App:
    app = App("quarantine")
    for subject in SUBJECTS:
        app.task(subject)(_done)
    return app


async def _done() -> str:
    return "done"


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


async def test_damaged_records_are_quarantined_and_stop_nothing(backend: Backend, app: App):
    platform = Platform.build(backend.settings, local=True)  # the memory transport's worker
    client = Client(platform)
    stop = asyncio.Event()
    runners: list[asyncio.Task[None]] = []
    try:
        # Due later: SCHEDULED, for the forwarder to meet. Due now: published at once,
        # READY, for a worker's claim to meet.
        due_later = await client.publish("poison.here", delay=1.5)
        due_now = await client.publish("poison.here")
        await backend.damage(due_later.id, NAN_AS_NULL)
        await backend.damage(due_now.id, NOT_JSON)
        poisoned = {due_later.id, due_now.id}
        good = [await client.publish(s, delay=d) for s in SUBJECTS for d in (0, 1.5, 2)]

        # Reads answer before anything ran: the damaged records show as DEAD, with why.
        for task_id in poisoned:
            _assert_quarantined(await client.get(task_id))
        listed = {r.id: r for r in (await client.list(limit=100)).items}
        assert poisoned <= listed.keys()

        runners = [
            asyncio.create_task(Worker(platform, app.registry).run(stop)),
            asyncio.create_task(Scheduler(platform).run(stop)),
        ]
        for published in good:
            record = await _final(client, published.id, runners)
            assert (record.state, record.result) == (State.SUCCEEDED, "done"), record
        dead = await _dead(client, poisoned, runners)  # listed by their stored state
        for record in dead:
            _assert_quarantined(record)
        with pytest.raises(StateConflict, match="cannot be decoded"):
            await client.requeue(due_later.id)
        assert await client.purge(sorted(poisoned)) == 2
        for task_id in poisoned:
            with pytest.raises(NotFound):
                await client.get(task_id)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runners), 30)
        await client.close()
        await platform.close()


def _assert_quarantined(record: TaskRecord) -> None:
    error = record.last_error
    assert record.state is State.DEAD
    assert error is not None
    assert error.kind == CORRUPT
    assert "cannot be decoded" in error.message


async def _final(client: Client, task_id: str, runners: list[asyncio.Task[None]]) -> TaskRecord:
    for _ in range(600):
        record = await client.get(task_id)
        if record.state in (State.SUCCEEDED, State.DEAD, State.CANCELLED):
            return record
        _check_alive(runners)
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} is still {record.state}")


async def _dead(
    client: Client, ids: set[str], runners: list[asyncio.Task[None]]
) -> list[TaskRecord]:
    for _ in range(600):
        found = [r for r in (await client.dead_letters(limit=100)).items if r.id in ids]
        if len(found) == len(ids):
            return found
        _check_alive(runners)
        await asyncio.sleep(0.05)
    raise AssertionError(f"not all of {ids} were made DEAD in the store")


def _check_alive(runners: list[asyncio.Task[None]]) -> None:
    for runner in runners:
        if runner.done():
            runner.result()
            raise AssertionError("a runner stopped")


# -- each transition of the store, on its own ---------------------------------------------

NOW = 1_750_000_000.0


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[TaskStore]:
    store = make_plugin_manager().make_store(backend.settings.store, Settings(), ManualClock(NOW))
    yield store
    await store.close()


async def test_every_transition_quarantines_what_it_cannot_decode(
    store: TaskStore, backend: Backend
):
    def task(offset: float) -> Task:
        return Task(id=new_id(NOW), subject="poison.here", run_at=NOW + offset, created_at=NOW)

    ready, running, healthy, due = task(-3), task(-2), task(-1), task(0)
    await store.create([ready, running, healthy, due], now=NOW, idempotency_window=60)
    assert [t.id for t in await store.take_due(now=NOW - 2, limit=9, ready_until=NOW + 1)] == [
        ready.id,
        running.id,
    ]
    (claim,) = await store.claim([running.id], owner="w", now=NOW, lease_until=NOW + 5)
    assert claim.claimed
    for damaged, how in ((ready, NOT_JSON), (running, NAN_AS_NULL), (due, NAN_AS_NULL)):
        await backend.damage(damaged.id, how)
    poisoned = {ready.id, running.id, due.id}

    taken = await store.take_due(now=NOW, limit=9, ready_until=NOW + 10)
    assert [t.id for t in taken] == [healthy.id]
    again = await store.redispatch(now=NOW + 20, limit=9, ready_until=NOW + 30)
    assert [t.id for t in again] == [healthy.id]
    (recovered,) = await store.recover(now=NOW + 20, limit=9, default_max_attempts=3)
    _assert_quarantined(recovered)
    assert recovered.id == running.id

    dead = await store.query(TaskQuery(states=frozenset({State.DEAD})))
    assert {r.id for r in dead.items} == poisoned
    for record in dead.items:
        _assert_quarantined(record)
    assert await store.counts() == {("poison.here", State.DEAD): 3, ("poison.here", State.READY): 1}
    (claimed,) = await store.claim([ready.id], owner="w", now=NOW + 21, lease_until=NOW + 30)
    assert not claimed.claimed
    assert await store.purge(None) == 3
    assert await store.get(sorted(poisoned)) == [None, None, None]
