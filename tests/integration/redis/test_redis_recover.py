"""recover.lua keeps the recover rule inside one script for atomicity; this test pins it to
the core's decision (``atp.core.recovery``), so the two cannot drift apart."""

from __future__ import annotations

import pytest

from atp.core.clock import ManualClock
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.plugins import make_plugin_manager
from atp.core.recovery import recovered
from atp.core.settings import Settings
from atp.plugins.redis.store import RedisStore
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration

NOW = 1_750_000_000.0
DEFAULT_MAX = 1
"""Spent by the one attempt each task has had: a task without its own limit dies by it."""


@pytest.mark.parametrize("default", [DEFAULT_MAX, None])
async def test_recover_lua_decides_as_the_core_does(url: str, default: int | None) -> None:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock())
    assert isinstance(store, RedisStore)
    subject = f"{unique('s')}.x"
    tasks = [
        Task(new_id(NOW), subject, run_at=NOW, created_at=NOW, max_attempts=limit)
        for limit in (None, 1, 3, 3)
    ]
    try:
        await store.create(tasks, now=NOW, idempotency_window=60, ready_until=NOW + 30)
        ids = [t.id for t in tasks]
        await store.claim(ids, owner="w1", now=NOW, lease_until=NOW + 1)
        await store.cancel([ids[3]], now=NOW)
        before = await store.get(ids)
        later = NOW + 5
        changed = await store.recover(now=later, limit=10, default_max_attempts=default)
        expected = [recovered(r, later, default) for r in before if r is not None]
        assert sorted(changed, key=lambda r: r.id) == sorted(expected, key=lambda r: r.id)
    finally:
        await store.close()
