"""The core hooks the observability plugins stand on, with plain test plugins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from atp.core.model import Task
from atp.core.platform import Platform
from atp.core.plugins import hookimpl
from atp.sdk import App
from atp.sdk.testing import TestPlatform


class Stamp:
    """Adds a header per task, and overrides one the producer set."""

    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        return [
            {"stamp": t.subject, "traceparent": "mine"} if t.subject != "bare" else None
            for t in tasks
        ]


class Broken:
    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        raise RuntimeError("boom")


class Short:
    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        return [{"short": "1"}]


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    @hookimpl
    def atp_platform_built(self, platform: Platform) -> None:
        self.events.append(("built", platform))

    @hookimpl
    def atp_scheduler_started(self, scheduler: str) -> None:
        self.events.append(("started", scheduler))

    @hookimpl
    def atp_scheduler_stopped(self, scheduler: str) -> None:
        self.events.append(("stopped", scheduler))


async def test_plugin_headers_are_merged_before_the_store_keeps_the_task():
    async with TestPlatform(App(), plugins=[Stamp()]) as tp:
        one = await tp.client.publish("a.b", headers={"traceparent": "theirs", "keep": "1"})
        two = await tp.client.publish("bare", headers={"keep": "2"})
        first, second = await tp.get(one.id), await tp.get(two.id)
    assert dict(first.task.headers) == {"traceparent": "mine", "keep": "1", "stamp": "a.b"}
    assert dict(second.task.headers) == {"keep": "2"}


@pytest.mark.parametrize(
    ("plugin", "logged"),
    [(Broken(), "failed in hook atp_task_headers"), (Short(), "returned 1 header sets for 2")],
)
async def test_a_faulty_header_plugin_is_skipped_and_the_task_still_published(
    plugin, logged, caplog
):
    async with TestPlatform(App(), plugins=[plugin, Stamp()]) as tp:
        requests = [tp.client.request("a.b", headers={"keep": "1"}) for _ in range(2)]
        records = [await tp.get(p.id) for p in await tp.client.publish_many(requests)]
    for record in records:
        assert dict(record.task.headers) == {"keep": "1", "stamp": "a.b", "traceparent": "mine"}
    assert logged in caplog.text


async def test_platform_built_and_scheduler_lifetime_hooks_fire():
    seen = Seen()
    tp = TestPlatform(App(), plugins=[seen], workers=0)
    async with tp:
        pass
    assert seen.events == [
        ("built", tp.platform),
        ("started", "test-scheduler-1"),
        ("stopped", "test-scheduler-1"),
    ]
