"""Workflows on Redis beyond the port contract: the scripts' failure answers and their
reload after SCRIPT FLUSH, the hash tag of every key, the state and workflow indexes
through updates, and a workflow run to the end by a real worker and scheduler on an
all-Redis platform."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from atp.core.clock import ManualClock
from atp.core.codec import dumps
from atp.core.context import current_task
from atp.core.errors import AlreadyExists
from atp.core.ids import new_id
from atp.core.model import State
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.core.workflows import RunState, StepState
from atp.core.workflows.definition import Definition, Step, definition_to_dict
from atp.core.workflows.runs import Run, RunQuery
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis.keys import StoreKeys
from atp.plugins.redis.store import RedisStore
from atp.sdk.app import App
from atp.sdk.client import Client
from atp.sdk.conformance import unique
from atp.sdk.workflow import Workflow

pytestmark = pytest.mark.integration

NOW = 1_750_000_000.0


@pytest.fixture
async def store(url: str) -> AsyncIterator[RedisStore]:
    store = make_plugin_manager().make_store(url, Settings(), ManualClock(NOW))
    assert isinstance(store, RedisStore)
    yield store
    await store.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url.split("?")[0])
    yield client
    await client.aclose()


def definition(name: str, subject: str = "wf.one") -> Definition:
    return Definition(name, 1, (Step("one", subject=subject),))


def run(workflow: str, **fields: Any) -> Run:
    fields.setdefault("id", new_id(NOW))
    return Run(workflow=workflow, version=1, created_at=NOW, updated_at=NOW, **fields)


async def test_every_workflow_script_is_loaded_again_after_script_flush(
    store: RedisStore, raw: aioredis.Redis
) -> None:
    name = unique("wf")
    await raw.script_flush()
    assert await store.put_definitions([definition(name)], now=NOW) == [True]
    await raw.script_flush()
    assert await store.get_definitions([(name, None)]) == [definition(name)]
    await raw.script_flush()
    (stored,) = await store.create_runs([run(name, wake_at=NOW)])
    await raw.script_flush()
    assert await store.update_runs([stored.replace(wake_at=NOW + 1)]) == [True]
    (current,) = await store.get_runs([stored.id])
    assert current is not None
    assert (current.revision, current.wake_at) == (2, NOW + 1)


async def test_each_write_script_answers_its_refusal_and_writes_nothing(
    store: RedisStore, prefix: str, raw: aioredis.Redis
) -> None:
    name, other = unique("wf"), unique("wf")
    keys = StoreKeys(prefix)
    await store.put_definitions([definition(name)], now=NOW)
    args = [other, 1, b"{}", name, 1, b'{"changed": true}']
    put_keys = [keys.index("workflows"), keys.workflow(other), keys.workflow(name)]
    reply = await Scripts.run(raw, "workflow_put_definitions", put_keys, args)
    assert reply[:2] == [0, 2]
    assert not await raw.exists(keys.workflow(other))

    (stored,) = await store.create_runs([run(name)])
    fresh = run(name)
    states = [state.value for state in RunState]
    state_keys = [keys.runs_in(state) for state in states]
    create_keys = [
        keys.index("runs"),
        keys.index("runs_due"),
        *state_keys,
        keys.run(fresh.id),
        keys.workflow_runs(name),
        keys.run(stored.id),
        keys.workflow_runs(name),
    ]
    create_args = [
        *states,
        fresh.id,
        name,
        "FAILED",
        "",
        b"{}",
        stored.id,
        name,
        "RUNNING",
        "",
        b"{}",
    ]
    assert await Scripts.run(raw, "workflow_create_runs", create_keys, create_args) == 2
    assert not await raw.exists(keys.run(fresh.id), keys.runs_in("FAILED"))

    update_keys = [
        keys.index("runs_due"),
        *state_keys,
        keys.run(stored.id),
        keys.workflow_runs(name),
    ]
    update_args = [*states, stored.id, 7, 8, name, "FAILED", repr(NOW), b"{}"]
    assert await Scripts.run(raw, "workflow_update_runs", update_keys, update_args) == [0]
    assert await store.get_runs([stored.id]) == [stored]
    assert not await raw.exists(keys.index("runs_due"), keys.runs_in("FAILED"))


async def test_listing_by_states_follows_updates_across_pages(store: RedisStore) -> None:
    name = unique("wf")
    runs = await store.create_runs([run(name, id=new_id(NOW + i)) for i in range(6)])
    moved = [runs[i].replace(state=RunState.FAILED) for i in (1, 4)]
    done = [runs[i].replace(state=RunState.SUCCEEDED) for i in (0, 3)]
    assert await store.update_runs([*moved, *done]) == [True] * 4
    wanted = frozenset({RunState.RUNNING, RunState.FAILED})
    first = await store.list_runs(RunQuery(states=wanted, limit=2))
    second = await store.list_runs(RunQuery(states=wanted, cursor=first.next_cursor, limit=2))
    assert second.next_cursor is None
    seen = [(r.id, r.state) for r in [*first.items, *second.items]]
    expected = [
        (r.id, RunState.FAILED if i in (1, 4) else RunState.RUNNING)
        for i, r in enumerate(runs)
        if i not in (0, 3)
    ]
    assert seen == expected[::-1]
    only = await store.list_runs(RunQuery(states=frozenset({RunState.SUCCEEDED})))
    assert [r.id for r in only.items] == [runs[3].id, runs[0].id]


async def test_a_version_stored_in_other_bytes_but_equal_is_not_created_again(
    store: RedisStore, prefix: str, raw: aioredis.Redis
) -> None:
    name, other = unique("wf"), unique("wf")
    reordered = dumps(dict(reversed(definition_to_dict(definition(name)).items())))
    assert reordered != dumps(definition_to_dict(definition(name)))
    await raw.hset(StoreKeys(prefix).workflow(name), "1", reordered)
    batch = [definition(other), definition(name)]
    assert await store.put_definitions(batch, now=NOW) == [True, False]
    assert await raw.hget(StoreKeys(prefix).workflow(name), "1") == reordered
    with pytest.raises(AlreadyExists, match=name):
        await store.put_definitions([definition(name, "wf.changed")], now=NOW)


async def test_a_run_moved_to_another_workflow_is_listed_under_the_new_one_only(
    store: RedisStore,
) -> None:
    old, new = unique("wf"), unique("wf")
    (stored,) = await store.create_runs([run(old)])
    assert await store.update_runs([stored.replace(workflow=new)]) == [True]
    assert (await store.list_runs(RunQuery(workflow=old))).items == []
    assert [r.id for r in (await store.list_runs(RunQuery(workflow=new))).items] == [stored.id]


async def test_a_taken_run_id_is_named_in_the_error(store: RedisStore) -> None:
    name = unique("wf")
    (first,) = await store.create_runs([run(name)])
    with pytest.raises(AlreadyExists, match=first.id):
        await store.create_runs([run(name), run(name, id=first.id)])
    assert len((await store.list_runs(RunQuery(workflow=name))).items) == 1


async def test_every_workflow_key_carries_the_store_hash_tag(
    store: RedisStore, prefix: str, raw: aioredis.Redis
) -> None:
    name = unique("wf")
    await store.put_definitions([definition(name)], now=NOW)
    (stored,) = await store.create_runs([run(name, wake_at=NOW)])
    await store.update_runs([stored.replace(state=RunState.SUCCEEDED, wake_at=None)])
    written = [key.decode() async for key in raw.scan_iter(f"{prefix}:*")]
    # workflows, workflow:<name>, runs, runs_in:SUCCEEDED, run:<id>, workflow_runs:<name>
    assert len(written) == 6
    assert {key.split("{")[1].split("}")[0] for key in written} == {"s0"}
    keys = StoreKeys(prefix)
    built = [
        keys.workflow(name),
        keys.run("x"),
        keys.workflow_runs(name),
        keys.index("workflows"),
        keys.index("runs"),
        keys.index("runs_due"),
        keys.runs_in("RUNNING"),
    ]
    assert all(key.startswith(f"{prefix}:{{s0}}:") for key in built)


# -- a workflow on an all-Redis platform ---------------------------------------------------


async def test_a_chain_with_fan_out_and_fan_in_succeeds_on_redis(url: str) -> None:
    app, calls = recording_app()
    settings = Settings(
        store=url,
        transport=url,
        coordinator=url,
        lease=5,
        heartbeat=1,
        leader_ttl=2,
        reap_interval=0.2,
        forward_interval=0.05,
        drain_timeout=2,
    )
    platform = Platform.build(settings)
    client = Client(platform)
    stop = asyncio.Event()
    runners = [
        asyncio.create_task(Worker(platform, app.registry).run(stop)),
        asyncio.create_task(Scheduler(platform).run(stop)),
    ]
    try:
        await client.register_workflow(*app.workflows.values())
        started = await client.start_workflow("orders.flow", {"order": 7})
        done = await finished(client, started.id, runners)
        counts = await platform.store.counts()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runners), 30)
        await client.close()
        await platform.close()
    assert done.state is RunState.SUCCEEDED, done
    assert {step.state for step in done.steps.values()} == {StepState.SUCCEEDED}
    assert calls == Counter({"orders.check": 1, "orders.pack": 3, "orders.ship": 1})
    assert counts == {(subject, State.SUCCEEDED): n for subject, n in calls.items()}
    assert done.result == {
        "ship": {"step": "orders.ship", "parents": ["pack-0", "pack-1", "pack-2"]}
    }


def recording_app() -> tuple[App, Counter[str]]:
    app, calls = App("wf-redis"), Counter[str]()
    flow = Workflow("orders.flow")
    check = flow.step("orders.check")
    packs = [flow.step("orders.pack", name=f"pack-{i}", after=check) for i in range(3)]
    flow.step("orders.ship", name="ship", after=packs)
    app.workflow(flow)

    @app.task("orders.check")
    @app.task("orders.pack")
    @app.task("orders.ship")
    async def handler(input: Any, parents: dict[str, Any]) -> dict[str, Any]:
        subject = current_task().subject
        calls[subject] += 1
        return {"step": subject, "parents": sorted(parents)}

    return app, calls


async def finished(client: Client, run_id: str, runners: list[asyncio.Task[None]]) -> Run:
    """Poll the run until it is over (30 s at most), failing early if a runner died."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = await client.get_run(run_id)
        if current.finished:
            return current
        for runner in runners:
            if runner.done():
                runner.result()
                raise AssertionError("a worker or scheduler stopped early")
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} not finished in 30 s: {await client.get_run(run_id)}")
