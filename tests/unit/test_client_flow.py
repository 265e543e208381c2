"""Flow control through the SDK (ADR 0038, 0039), in process and over REST alike: limits (a
key rule's weight among them) and pauses, the publish options concurrency_key, rate_key,
group_key, debounce, throttle and unique, and KeyActive rebuilt as itself from the
server's answer."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook
from atp.adapters.http import create_app
from atp.core.clock import ManualClock
from atp.core.errors import IdempotencyConflict, InvalidInput, KeyActive, NotFound
from atp.core.flow.rules import Limit, Rate
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk import Client, Dedup, DedupMode, FlowStatus, State, SyncClient
from atp.sdk._http import HttpRemote
from atp.sdk.client import publish_request

NOW = 1_800_000_000.0
MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")


@pytest.fixture(params=["local", "http"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    """A client over a memory platform: in process, or through the REST app over it."""
    platform = Platform.build(MEMORY, clock=ManualClock(start=NOW), local=True)
    if request.param == "local":
        async with Client(platform) as local:
            yield local
    else:
        guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1, burst=1, enabled=False)
        app = create_app(platform, guard, ServerSettings(auth=False))
        remote = HttpRemote("http://atp", None, clock=platform.clock)
        await remote.close()
        remote._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://atp"
        )
        async with Client(remote) as over_http:
            yield over_http
    await platform.close()


def clock_of(client: Client) -> ManualClock:
    clock = client._ops.clock
    assert isinstance(clock, ManualClock)
    return clock


# -- limits and pauses ---------------------------------------------------------------------


async def test_set_list_and_remove_limits(client):
    stored = await client.set_limit("payments.*", concurrency=5, rate="10/s", burst=20)
    assert stored == Limit(
        "payments.*", concurrency=5, rate=Rate(10, 1.0), burst=20, updated_at=NOW
    )
    keyed = await client.set_limit("customer:*", key=True, window=Rate(100, 60))
    assert (keyed.name, keyed.window) == ("key:customer:*", Rate(100, 60.0))

    status = await client.limits()
    assert isinstance(status, FlowStatus)
    assert sorted(limit.name for limit in status.limits) == ["key:customer:*", "subject:payments.*"]
    assert stored in status.limits
    assert (status.pauses, status.waiting) == ((), {})
    assert status.version > 0

    await client.remove_limit("payments.*")
    with pytest.raises(NotFound):
        await client.remove_limit("payments.*")
    with pytest.raises(InvalidInput, match="pattern"):
        await client.remove_limit("customer:*")  # a key limit, asked for as a subject one
    await client.remove_limit("customer:*", key=True)
    assert (await client.limits()).limits == ()


async def test_a_key_rule_may_weigh_its_groups(client):
    alone = await client.set_limit("tenant:*", key=True, weight=3)
    assert alone == Limit("tenant:*", key=True, weight=3, updated_at=NOW)
    beside = await client.set_limit("tenant:big", key=True, rate="5/s", weight=7)
    assert (beside.rate, beside.burst, beside.weight) == (Rate(5, 1.0), None, 7)
    status = await client.limits()
    assert {limit.name: limit.weight for limit in status.limits} == {
        "key:tenant:*": 3,
        "key:tenant:big": 7,
    }
    assert set(status.limits) == {alone, beside}


@pytest.mark.parametrize(
    "options",
    [
        {"key": True, "weight": 0},
        {"key": True, "weight": 1001},
        {"key": True, "weight": 2.0},
        {"key": True, "weight": True},
        {"weight": 2},  # a weight is for key rules
        {"concurrency": 2, "weight": 2},
    ],
)
async def test_a_bad_weight_is_refused_and_nothing_is_stored(client, options):
    target = "tenant:*" if options.get("key") else "orders.*"
    with pytest.raises(InvalidInput, match="weight"):
        await client.set_limit(target, **options)
    assert (await client.limits()).version == 0


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"concurrency": 0},
        {"rate": "fast"},
        {"window": "1/2d"},
        {"concurrency": 1, "burst": 5},
        {"concurrency": True},
    ],
)
async def test_a_bad_limit_is_refused_and_nothing_is_stored(client, options):
    with pytest.raises(InvalidInput):
        await client.set_limit("orders.*", **options)
    assert (await client.limits()).version == 0


async def test_pause_and_resume(client):
    assert await client.pause("orders.*") is True
    assert await client.pause("orders.*") is False
    assert (await client.limits()).pauses == ("orders.*",)
    assert await client.resume("orders.*") == 0
    with pytest.raises(NotFound):
        await client.resume("orders.*")
    with pytest.raises(InvalidInput):
        await client.pause("orders..close")
    assert (await client.limits()).pauses == ()


# -- publish options -----------------------------------------------------------------------


async def test_keys_and_a_throttle_reach_the_task(client):
    options = {"idempotency_key": "k", "throttle": timedelta(minutes=1)}
    first = await client.publish(
        "orders.close",
        1,
        concurrency_key="customer:42",
        rate_key="tenant:a",
        group_key="tenant:b",
        **options,
    )
    record = await client.get(first.id)
    assert (record.task.concurrency_key, record.task.rate_key) == ("customer:42", "tenant:a")
    assert record.task.group_key == "tenant:b"
    assert record.task.dedup == Dedup(DedupMode.THROTTLE, 60.0)
    await clock_of(client).advance(59)
    again = await client.publish("orders.close", 1, **options)
    assert (again.id, again.created) == (first.id, False)
    await clock_of(client).advance(2)
    later = await client.publish("orders.close", 1, **options)
    assert later.created
    assert later.id != first.id


async def test_a_debounce_replaces_the_pending_task(client):
    first = await client.publish("orders.close", 1, idempotency_key="k", debounce="30s")
    await clock_of(client).advance(10)
    second = await client.publish("orders.close", 2, idempotency_key="k", debounce="30s")
    assert (first.run_at, first.replaced) == (NOW + 30, None)
    assert (second.run_at, second.replaced) == (NOW + 40, first.id)
    assert (await client.get(first.id)).state is State.CANCELLED


async def test_a_unique_key_held_by_an_active_task_raises_key_active(client):
    first = await client.publish("orders.close", idempotency_key="k", unique=True)
    with pytest.raises(KeyActive) as caught:
        await client.publish("orders.close", idempotency_key="k", unique=True)
    assert isinstance(caught.value, IdempotencyConflict)
    assert [(c.index, c.task_id, c.fields) for c in caught.value.conflicts] == [(0, first.id, ())]
    await client.cancel(first.id)
    freed = await client.publish("orders.close", idempotency_key="k", unique=True)
    assert freed.created


@pytest.mark.parametrize(
    "options",
    [
        {"idempotency_key": "k", "debounce": 5, "throttle": 5},
        {"idempotency_key": "k", "throttle": 5, "unique": True},
        {"idempotency_key": "k", "unique": "yes"},
        {"idempotency_key": "k", "debounce": "soon"},
        {"idempotency_key": "k", "throttle": -1},
        {"unique": True},  # no idempotency key
        {"idempotency_key": "k", "debounce": 5, "delay": 1},
        {"concurrency_key": "a b"},
        {"rate_key": ""},
        {"group_key": "a b"},
        {"group_key": "tenant:*"},
        {"group_key": ""},
    ],
)
async def test_bad_publish_options_are_refused_and_nothing_is_written(client, options):
    with pytest.raises(InvalidInput):
        await client.publish("orders.close", **options)
    assert await client.counts() == {}


def test_a_group_key_is_a_publish_option():
    assert publish_request("a.b", group_key="tenant:1").group_key == "tenant:1"
    assert publish_request("a.b").group_key is None
    assert Client.request("a.b", group_key="t").group_key == "t"


def test_the_dedup_options_make_one_dedup():
    assert publish_request("a.b", idempotency_key="k", unique=False).dedup is None
    assert publish_request("a.b", idempotency_key="k", unique=True).dedup == Dedup(DedupMode.UNIQUE)
    assert publish_request("a.b", idempotency_key="k", debounce="2m").dedup == Dedup(
        DedupMode.DEBOUNCE, 120.0
    )


# -- SyncClient ----------------------------------------------------------------------------


def test_sync_client_has_the_flow_methods():
    for name in ("set_limit", "remove_limit", "limits", "pause", "resume"):
        blocking, coroutine = getattr(SyncClient, name), getattr(Client, name)
        assert blocking.__doc__ == coroutine.__doc__
        assert inspect.signature(blocking.__wrapped__) == inspect.signature(coroutine)


def test_sync_client_sets_limits_and_pauses(tmp_path: Path) -> None:
    settings = MEMORY.replace(store=f"sqlite:///{tmp_path}/atp.db")
    with SyncClient.connect(settings=settings) as client:
        limit = client.set_limit("orders.*", concurrency=2)
        weight = client.set_limit("tenant:*", key=True, weight=4)
        assert client.pause("orders.close") is True
        status = client.limits()
        assert (status.limits, status.pauses) == ((weight, limit), ("orders.close",))
        published = client.publish("orders.open", group_key="tenant:1")
        assert client.get(published.id).task.group_key == "tenant:1"
        client.remove_limit("tenant:*", key=True)
        assert client.resume("orders.close") == 0
        client.remove_limit("orders.*")
        assert client.limits().limits == ()
