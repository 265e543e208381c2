"""Idempotency keys on Redis are scoped by subject (ADR 0028), and a key written before
the scoping still deduplicates on its own task's subject until its window closes."""

from __future__ import annotations

import redis.asyncio as aioredis

from atp.core.clock import ManualClock
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Created, TaskStore
from atp.core.settings import Settings
from atp.plugins.redis._records import num
from atp.plugins.redis.keys import StoreKeys
from atp.sdk.conformance import unique

NOW = 1_750_000_000.0
WINDOW = 3600.0


def task(subject: str, key: str | None = None, run_at: float = NOW) -> Task:
    return Task(new_id(NOW), subject, run_at=run_at, created_at=NOW, idempotency_key=key)


async def create(store: TaskStore, item: Task, now: float = NOW + 1) -> Created:
    (created,) = await store.create([item], now=now, idempotency_window=WINDOW)
    return created


async def test_an_unscoped_key_holds_only_for_its_tasks_subject(url: str, prefix: str) -> None:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock(start=NOW))
    client = aioredis.Redis.from_url(url.split("?")[0])
    subject, key, gone = f"{unique('orders')}.close", unique("key"), unique("gone")
    first = task(subject, run_at=NOW + 60)
    try:
        await create(store, first, now=NOW)
        legacy = StoreKeys(prefix).unscoped_idempotency
        await client.set(legacy(key), f"{first.id} {num(NOW)}", px=int(WINDOW * 1000))
        await client.set(legacy(gone), f"{new_id(NOW)} {num(NOW)}", px=int(WINDOW * 1000))
        same = await create(store, task(subject, key))
        other = task(f"{subject}.other", key)
        elsewhere = await create(store, other)
        orphan = task(subject, gone)
        dropped = await create(store, orphan)
        late = task(subject, key)
        closed = await create(store, late, now=NOW + WINDOW + 1)
    finally:
        await client.aclose()
        await store.close()
    assert same == Created(first.id, False, NOW + 60), "the old key holds on its subject"
    assert elsewhere == Created(other.id, True, NOW), "and only there"
    assert dropped == Created(orphan.id, True, NOW), "a key whose task is gone has no subject"
    assert closed == Created(late.id, True, NOW), "an old key's window closes as a new one's"
