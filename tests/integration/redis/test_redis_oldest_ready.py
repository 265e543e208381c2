"""oldest_ready.lua on a real Redis: a candidate read from the ready index that is no
longer READY by the time the script runs (claimed, cancelled, deleted) is skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from atp.core.clock import ManualClock
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis.keys import StoreKeys
from atp.plugins.redis.store import RedisStore
from atp.sdk.conformance import unique
from atp.sdk.conformance._support import make_task

pytestmark = pytest.mark.integration

NOW = 1_750_000_000.0


@pytest.fixture
async def store(url: str) -> AsyncIterator[RedisStore]:
    settings = Settings(store=url, transport="memory://")
    built = make_plugin_manager(settings, entry_points=False).make_store(
        url, settings, ManualClock()
    )
    assert isinstance(built, RedisStore)
    yield built
    await built.close()


async def test_the_script_skips_candidates_no_longer_ready(store: RedisStore, prefix: str) -> None:
    subject = f"{unique('s')}.x"
    ready, claimed, cancelled = (make_task(subject, NOW - age) for age in (5, 50, 40))
    await store.create(
        [ready, claimed, cancelled], now=NOW, idempotency_window=60, ready_until=NOW + 30
    )
    await store.claim([claimed.id], owner="w", now=NOW, lease_until=NOW + 30)
    await store.cancel([cancelled.id], now=NOW)
    keys = StoreKeys(prefix)
    candidates = [keys.task(t.id) for t in (claimed, cancelled, ready)] + [keys.task("missing")]
    reply = await Scripts.run(store._link, "oldest_ready", candidates, [])
    assert [reply[0].decode(), float(reply[1])] == [subject, NOW - 5]
    assert len(reply) == 2
    assert await store.oldest_ready(limit=10) == {subject: NOW - 5}
