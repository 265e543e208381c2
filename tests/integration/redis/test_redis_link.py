"""``Link.call``, the lean command path of the scripts, and ``Guard``'s bound, on a real
Redis: a connection kept between calls, left clean by a cancelled call, given back on
close; a timeout is BackendUnavailable, the caller's own cancel stays a cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from atp.core.errors import BackendUnavailable
from atp.plugins.redis._connection import Link, Scripts, parse_url, translate
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def link(redis_url: str) -> AsyncIterator[Link]:
    parsed = parse_url(f"{redis_url}?prefix={unique('link')}")
    assert parsed is not None
    link = Link(parsed)
    yield link
    await link.close()


async def test_sequential_calls_share_one_connection_out_of_the_pool(link: Link) -> None:
    pool = link.client.connection_pool
    in_use = len(pool._in_use_connections)
    assert await link.call("PING") == b"PONG"
    for n in range(20):
        assert await link.call("ECHO", str(n)) == str(n).encode()
    assert len(pool._in_use_connections) == in_use + 1, "one connection kept, not 20 checkouts"


async def test_concurrent_calls_each_get_a_connection(link: Link) -> None:
    replies = await asyncio.gather(*(link.call("ECHO", str(n)) for n in range(8)))
    assert replies == [str(n).encode() for n in range(8)]


async def test_a_cancelled_call_leaves_no_reply_behind(link: Link) -> None:
    key = f"{unique('link')}:empty"
    blocked = asyncio.create_task(link.call("BLPOP", key, 5))
    await asyncio.sleep(0.1)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    await link.call("RPUSH", key, "late")  # BLPOP's answer, had its connection stayed
    assert await link.call("ECHO", "next") == b"next"
    assert await link.call("LRANGE", key, 0, -1) == [b"late"]
    await link.call("DEL", key)


async def test_scripts_run_on_a_link_reload_a_flushed_cache(link: Link) -> None:
    holder = f"{link.url.prefix}:{{lease:x}}:holder"
    await link.call("SCRIPT", "FLUSH")
    assert await Scripts.run(link, "lease_holder", [holder], []) is None  # nobody holds it
    assert await link.call("SCRIPT", "EXISTS", Scripts.source("lease_holder")[1]) == [1]


async def test_close_gives_the_kept_connections_back(redis_url: str) -> None:
    parsed = parse_url(f"{redis_url}?prefix={unique('link')}")
    assert parsed is not None
    link, other = Link(parsed), Link(parsed)  # the same URL: one shared pool
    try:
        pool = other.client.connection_pool
        await asyncio.gather(*(link.call("PING") for _ in range(3)))
        assert len(pool._in_use_connections) == 3
        await link.close()
        assert len(pool._in_use_connections) == 0
        with pytest.raises(BackendUnavailable):
            await link.call("PING")
    finally:
        await link.close()
        await other.close()


async def test_guard_turns_its_own_timeout_into_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match=r"no answer within 0\.05s"):
        async with translate("waiting", 0.05):
            await asyncio.sleep(5)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_guard_leaves_the_callers_cancel_a_cancel() -> None:
    async def guarded() -> None:
        async with translate("waiting", 5.0):
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_guard_with_no_bound_only_translates() -> None:
    async with translate("nothing", None):
        await asyncio.sleep(0)
