"""The SQLite Limiter: buckets shared by separate connections to one file, as two server
processes share them."""

from __future__ import annotations

import asyncio

from atp.core.clock import ManualClock
from atp.plugins.sqlite.limiter import SqliteLimiter


async def test_two_limiters_on_one_file_share_each_bucket(tmp_path):
    clock = ManualClock()
    url = f"sqlite:///{tmp_path / 'limits.db'}"
    first, second = SqliteLimiter.from_url(url, clock), SqliteLimiter.from_url(url, clock)
    try:
        waits = await asyncio.gather(
            *(limiter.acquire("token:a", rate=1.0, burst=3) for limiter in [first, second] * 3)
        )
        assert sorted(waits)[:3] == [0.0, 0.0, 0.0]
        assert all(w > 0 for w in sorted(waits)[3:])
        assert await second.acquire("token:b", rate=1.0, burst=1) == 0.0  # its own bucket
        await clock.advance(1.0)
        assert await first.acquire("token:a", rate=1.0, burst=3) == 0.0
        assert await second.acquire("token:a", rate=1.0, burst=3) > 0
    finally:
        await first.close()
        await second.close()
