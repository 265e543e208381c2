"""The Redis store's bounded error history on a record stored before the bound: it reads
whole, and the next append, by finish.lua or recover.lua, cuts it to ``ERROR_HISTORY``.

The bound itself is proven on every store by the conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from atp.core.clock import ManualClock
from atp.core.codec import dumps, error_to_dict
from atp.core.ids import new_id
from atp.core.model import ERROR_HISTORY, AttemptError, State, Task
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Outcome
from atp.core.settings import Settings
from atp.plugins.redis.keys import StoreKeys
from atp.plugins.redis.store import RedisStore
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration

NOW = 1_750_000_000.0
OLD = [AttemptError(n, NOW - 100 + n, f'old {n} {{"attempt":{n}}}', "error") for n in range(1, 51)]
"""A history of 50 errors, as a record kept before the bound could have."""


@pytest.fixture
async def store(url: str) -> AsyncIterator[RedisStore]:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock(NOW))
    assert isinstance(store, RedisStore)
    yield store
    await store.close()


async def running_with_old_history(store: RedisStore, url: str, prefix: str) -> Task:
    """A task claimed by ``w1`` at NOW, its lease until NOW + 30, holding ``OLD``."""
    task = Task(new_id(NOW), f"{unique('s')}.x", run_at=NOW, created_at=NOW, max_attempts=99)
    await store.create([task], now=NOW, idempotency_window=60, ready_until=NOW + 30)
    await store.claim([task.id], owner="w1", now=NOW, lease_until=NOW + 30)
    client = aioredis.Redis.from_url(url.split("?")[0])
    try:
        old = dumps([error_to_dict(error) for error in OLD])
        await client.hset(StoreKeys(prefix).task(task.id), "e", old)
    finally:
        await client.aclose()
    [record] = await store.get([task.id])
    assert record is not None
    assert record.errors == tuple(OLD)  # read whole: no trimming on read
    return task


async def test_finish_cuts_an_old_history_to_the_bound(
    store: RedisStore, url: str, prefix: str
) -> None:
    task = await running_with_old_history(store, url, prefix)
    new = AttemptError(1, NOW + 1, "new", "error", "Traceback: new")
    retry = Outcome(task.id, "w1", State.SCHEDULED, at=NOW + 1, error=new, run_at=NOW + 9)
    assert await store.finish([retry]) == [True]
    [record] = await store.get([task.id])
    assert record is not None
    assert record.errors == (OLD[0], *OLD[-(ERROR_HISTORY - 2) :], new)


async def test_recover_cuts_an_old_history_to_the_bound(
    store: RedisStore, url: str, prefix: str
) -> None:
    task = await running_with_old_history(store, url, prefix)
    [record] = await store.recover(now=NOW + 30, limit=10, default_max_attempts=None)
    assert len(record.errors) == ERROR_HISTORY
    assert record.errors[:-1] == (OLD[0], *OLD[-(ERROR_HISTORY - 2) :])
    assert (record.errors[-1].kind, record.errors[-1].attempt) == ("lease", 1)
    assert await store.get([task.id]) == [record]
