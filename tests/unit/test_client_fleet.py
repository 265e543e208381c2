"""The fleet through the SDK (ADR 0040, 0041), in process and over REST alike:
``Client.workers()`` sees a TestPlatform's running workers and scheduler leader, and
``Client.breakers()`` an open breaker; ``SyncClient`` offers both."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook
from atp.adapters.http import create_app
from atp.core.flow.breaker import Breaker, breaker_key
from atp.core.ports import BreakerLedger, Sample
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk import App, Circuit, Client, SyncClient
from atp.sdk._http import HttpRemote
from atp.sdk.testing import TestPlatform

SETTINGS = Settings(heartbeat=1.0, registry_ttl=5.0, concurrency=3)


@pytest.fixture(params=["local", "http"])
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[tuple[TestPlatform, Client]]:
    """Two workers and a scheduler on a TestPlatform, and a client over it: in process,
    or through the REST app."""
    app = App()

    @app.task("orders.close")
    async def close() -> None: ...

    async with TestPlatform(app, SETTINGS, workers=0) as tp:
        await tp.start_worker(name="w2", group="billing")
        await tp.start_worker(name="w1")
        if request.param == "local":
            yield tp, tp.client
            return
        platform = tp.platform
        guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1, burst=1, enabled=False)
        served = create_app(platform, guard, ServerSettings(auth=False))
        remote = HttpRemote("http://atp", None, clock=platform.clock)
        await remote.close()
        remote._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served), base_url="http://atp"
        )
        async with Client(remote) as over_http:
            yield tp, over_http


async def test_workers_lists_the_running_workers_and_the_leader(setup):
    tp, client = setup
    found = await client.workers()
    assert [(w.name, w.group, w.patterns, w.concurrency) for w in found.workers] == [
        ("w1", "default", ("orders.close",), 3),
        ("w2", "billing", ("orders.close",), 3),
    ]
    [scheduler] = tp.schedulers
    assert found.leader is not None
    assert found.leader.owner == scheduler.name
    assert found.leader.token >= 1
    assert found.registry
    await tp.workers[0].stop()
    assert [w.name for w in (await client.workers()).workers] == ["w1"]


async def test_breakers_lists_an_open_breaker(setup):
    tp, client = setup
    store = tp.platform.store
    assert isinstance(store, BreakerLedger)
    assert await client.breakers() == []
    sample = Sample(breaker_key("billing", "orders.close"), Breaker(min_volume=1), 0, 1)
    await store.observe([sample], now=tp.clock.now())
    [state] = await client.breakers()
    assert (state.key, state.circuit, state.subject) == (
        "billing/orders.close",
        Circuit.OPEN,
        "orders.close",
    )


def test_the_sync_client_has_both(tmp_path):
    for name in ("workers", "breakers"):
        blocking, coroutine = getattr(SyncClient, name), getattr(Client, name)
        assert blocking.__doc__ == coroutine.__doc__
        assert inspect.signature(blocking.__wrapped__) == inspect.signature(coroutine)
    with SyncClient.connect(f"sqlite:///{tmp_path}/atp.db") as client:
        found = client.workers()
        assert (found.workers, found.leader, found.registry) == ((), None, True)
        assert client.breakers() == []
