"""``TaskService.publish``'s one-pass build: plugin headers merged into the task built once,
never into what the producer passed, and the validation fast paths still refusing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import pytest

from atp.core.errors import InvalidInput
from atp.core.model import Task
from atp.core.plugins import hookimpl
from atp.core.service import PublishRequest, TaskService
from atp.sdk import App
from atp.sdk.testing import TestPlatform


class Trace:
    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        return [{"traceparent": "mine"} for _ in tasks]


async def test_plugin_headers_never_reach_the_producers_mappings():
    theirs = {"keep": "1"}
    async with TestPlatform(App(), plugins=[Trace()]) as tp:
        requests = [tp.client.request("a.b", headers=theirs), tp.client.request("a.b")]
        published = await tp.client.publish_many(requests)
        records = [await tp.get(p.id) for p in published]
    assert theirs == {"keep": "1"}
    assert [dict(r.task.headers) for r in records] == [
        {"keep": "1", "traceparent": "mine"},
        {"traceparent": "mine"},
    ]
    assert records[0].task.headers is not records[1].task.headers


async def test_headers_of_any_mapping_type_are_taken_and_bad_ones_refused():
    async with TestPlatform(App()) as tp:
        one = await tp.client.publish("a.b", headers=MappingProxyType({"k": "v"}))
        assert dict((await tp.get(one.id)).task.headers) == {"k": "v"}
        service = TaskService(tp.platform)
        for bad in ([("k", "v")], {"k": 1}, {"": "v"}):
            with pytest.raises(InvalidInput):
                await service.publish([PublishRequest("a.b", headers=bad)])  # type: ignore[arg-type]


@pytest.mark.parametrize("priority", [True, 1.0, 2**31])
async def test_a_priority_that_is_not_a_small_int_is_refused(priority: object):
    async with TestPlatform(App()) as tp:
        with pytest.raises(InvalidInput, match="priority"):
            await tp.client.publish("a.b", priority=priority)  # type: ignore[arg-type]
        assert await tp.client.counts() == {}


class SlowCreates:
    """A store whose creates wait for a gate, counting the batches they are given."""

    def __init__(self, store) -> None:  # type: ignore[no-untyped-def]
        self._store = store
        self.batches: list[int] = []
        self.gate = asyncio.Event()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._store, name)

    async def create(self, tasks, **kwargs):  # type: ignore[no-untyped-def]
        self.batches.append(len(tasks))
        await self.gate.wait()
        return await self._store.create(tasks, **kwargs)


async def test_publishes_made_while_one_is_in_the_store_share_the_next_call():
    async with TestPlatform(App(), workers=0) as tp:
        store = tp.platform.store = SlowCreates(tp.platform.store)
        service = TaskService(tp.platform)
        first = asyncio.ensure_future(service.publish([PublishRequest("a.b", 0)]))
        await asyncio.sleep(0)  # the first call is in the store
        assert store.batches == [1]
        keyed = PublishRequest("a.b", "same key", idempotency_key="k")
        later = [
            asyncio.ensure_future(service.publish([PublishRequest("a.b", n)])) for n in range(1, 6)
        ]
        twins = [asyncio.ensure_future(service.publish([keyed])) for _ in range(2)]
        bad = asyncio.ensure_future(service.publish([PublishRequest("a..b", 9)]))
        await asyncio.sleep(0)
        store.gate.set()
        with pytest.raises(InvalidInput):
            await bad  # refused at once, joining nothing
        results = [await call for call in [first, *later, *twins]]
        payloads = [(await tp.get(p.id)).task.payload for [p] in results[:6]]
    assert store.batches == [1, 7]
    assert payloads == [0, 1, 2, 3, 4, 5]
    [one], [two] = results[6:]
    assert one.id == two.id
    assert [one.created, two.created] == [True, False]
