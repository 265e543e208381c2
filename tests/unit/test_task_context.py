"""``atp.sdk.context()``: a handler publishes follow-ups through its worker, in the parent
task's idempotency scope, from async and sync handlers alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from atp.core.model import RetryPolicy, State, Task, TaskRecord
from atp.core.plugins import hookimpl
from atp.sdk import App, Client, IdempotencyConflict, TaskContext, context
from atp.sdk.testing import TestPlatform

NO_BACKOFF = RetryPolicy(base=0.0, jitter=False)


async def _children(tp: TestPlatform) -> list[TaskRecord]:
    return sorted(await tp.tasks(subject="child.*"), key=lambda r: r.task.payload["n"])


async def test_a_retried_handler_creates_its_two_follow_ups_once():
    app, attempts = App(), []

    @app.task("parent.run", retry=NO_BACKOFF)
    async def parent(order: int) -> None:
        ctx = context()
        attempts.append(ctx.attempt)
        await ctx.publish("child.mail", {"n": 1, "order": order})
        await ctx.publish_many([Client.request("child.bill", {"n": 2, "order": order})])
        if ctx.attempt == 1:
            raise ConnectionError("flaky")

    @app.task("child.*")
    async def child(n: int, order: int) -> None: ...

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("parent.run", {"order": 7})
        await tp.run_until_idle()
        assert (await tp.get(published.id)).state is State.SUCCEEDED
        children = await _children(tp)
    assert attempts == [1, 2]
    assert [r.task.subject for r in children] == ["child.mail", "child.bill"]
    assert [r.state for r in children] == [State.SUCCEEDED, State.SUCCEEDED]
    assert [r.task.idempotency_key for r in children] == [f"{published.id}/1", f"{published.id}/2"]
    assert {r.task.headers["atp-parent"] for r in children} == {published.id}


async def test_a_sync_handler_publishes_with_publish_sync():
    app = App()

    @app.task("parent.run")
    def parent() -> str:
        ctx = context()
        first = ctx.publish_sync("child.one", {"n": 1}, idempotency_key="mail")
        ctx.publish_many_sync([Client.request("child.two", {"n": 2})])
        return first.id

    @app.task("child.*")
    def child(n: int) -> None: ...

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("parent.run")
        await tp.run_until_idle()
        record = await tp.get(published.id)
        children = await _children(tp)
    assert record.state is State.SUCCEEDED
    assert record.result == children[0].id
    assert [r.task.idempotency_key for r in children] == [
        f"{published.id}:mail",
        f"{published.id}/1",
    ]


async def test_calling_the_other_kind_of_publish_fails_the_attempt_with_a_hint():
    app, errors = App(), []

    @app.task("sync.run", max_attempts=1)
    def sync_handler() -> None:
        try:
            context().publish("child.x")
        except RuntimeError as exc:
            errors.append(str(exc))
            raise

    @app.task("async.run", max_attempts=1)
    async def async_handler() -> None:
        try:
            context().publish_sync("child.x")
        except RuntimeError as exc:
            errors.append(str(exc))
            raise

    @app.task("child.x")
    async def child() -> None: ...

    async with TestPlatform(app) as tp:
        await tp.client.publish("sync.run")
        await tp.client.publish("async.run")
        await tp.run_until_idle()
        assert await tp.tasks(subject="child.*") == []
    assert sorted(errors) == [
        "a sync handler publishes follow-ups with ctx.publish_sync()",
        "an async handler publishes follow-ups with await publish()",
    ]


async def test_a_follow_up_with_other_parameters_on_a_retry_is_a_conflict():
    app, seen = App(), []

    @app.task("parent.run", max_attempts=2, retry=NO_BACKOFF)
    async def parent() -> None:
        ctx = context()
        try:
            await ctx.publish("child.x", {"n": ctx.attempt})
        except IdempotencyConflict as exc:
            seen.append(exc.conflicts[0].fields)
            raise
        raise ConnectionError("after publishing")

    @app.task("child.x")
    async def child(n: int) -> None: ...

    async with TestPlatform(app) as tp:
        await tp.client.publish("parent.run")
        await tp.run_until_idle()
        assert len(await tp.tasks(subject="child.*")) == 1
    assert seen == [("payload",)]


def test_outside_a_handler_context_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"only available inside a handler"):
        context()


class Tracing:
    """Stands in for the otel plugin: sets a trace context on every task published."""

    @hookimpl
    def atp_task_headers(self, tasks: Sequence[Task]) -> list[Mapping[str, str] | None]:
        return [{"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"} for _ in tasks]


PARENT_TRACE = f"00-{'a' * 32}-{'b' * 16}-01"


@pytest.mark.parametrize(("plugins", "trace"), [([], PARENT_TRACE), ([Tracing()], "1" * 32)])
async def test_a_follow_up_belongs_to_the_parents_trace(plugins: list[object], trace: str) -> None:
    app, contexts = App(), []

    @app.task("parent.run")
    async def parent() -> None:
        contexts.append(context())
        await context().publish("child.x", {"n": 1})

    @app.task("child.x")
    async def child(n: int) -> None: ...

    async with TestPlatform(app, plugins=plugins) as tp:
        await tp.client.publish("parent.run", headers={"traceparent": PARENT_TRACE})
        await tp.run_until_idle()
        (record,) = await tp.tasks(subject="child.*")
    assert trace in record.task.headers["traceparent"]
    (ctx,) = contexts
    assert isinstance(ctx, TaskContext)
    assert record.task.headers["atp-parent"] == ctx.id
