"""``Client.connect("http://…")`` and ``("grpc://…")`` against a running ``atp server``:
the same methods as the direct client, the same errors, and consuming over gRPC."""

from __future__ import annotations

import pytest

from atp.core.errors import (
    AlreadyExists,
    ConfigError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StateConflict,
    Unauthenticated,
)
from atp.core.model import State
from atp.core.ports import LeaseStatus
from atp.core.schedules import Misfire, Overlap
from atp.core.workflows.runs import RunState, StepState
from atp.sdk.client import Client
from atp.sdk.workflow import Workflow
from tests.integration.api.conftest import ApiServer, kill_tasks_async

pytestmark = pytest.mark.e2e


def urls(server: ApiServer) -> dict[str, str]:
    return {"http": server.url, "grpc": f"grpc://{server.grpc_target}"}


@pytest.fixture(params=["http", "grpc"])
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_same_methods_over_either_transport(api_server, scheme):
    url = urls(api_server)[scheme]
    subject = f"orders.sdk-{scheme}"
    async with Client.connect(url, token=api_server.tokens["admin"]) as client:
        published = await client.publish(subject, {"a": 1}, delay="1h", idempotency_key=scheme)
        again = await client.publish(subject, {"a": 1}, idempotency_key=scheme)
        assert published.created
        assert not again.created
        assert again.id == published.id
        batch = await client.publish_many([client.request(subject, n) for n in range(2)])
        record = await client.get(published.id)
        assert record.state is State.SCHEDULED
        assert record.task.payload == {"a": 1}
        page = await client.list(subject=subject, limit=2)
        assert len(page.items) == 2
        assert page.next_cursor
        rest = await client.list(subject=subject, cursor=page.next_cursor)
        assert len(rest.items) == 1
        assert (await client.counts())[(subject, State.SCHEDULED)] == 1
        assert (await client.cancel(published.id)).state is State.CANCELLED
        ids = [p.id for p in batch]
        await kill_tasks_async(api_server.store, ids)
        dead = await client.dead_letters(subject=subject)
        assert sorted(r.id for r in dead.items) == sorted(ids)
        back = await client.requeue(ids[0], delay=60, payload={"b": 1})
        assert back.state is State.SCHEDULED
        assert back.task.payload == {"b": 1}
        assert await client.purge([ids[1]]) == 1
        with pytest.raises(NotFound):
            await client.get("01NOPE")
        with pytest.raises(StateConflict):
            await client.requeue(ids[0])
        with pytest.raises(InvalidInput):
            await client.publish("bad subject")


async def test_errors_come_back_as_atp_errors(api_server, scheme):
    url = urls(api_server)[scheme]
    async with Client.connect(url, token=api_server.tokens["reader"]) as client:
        with pytest.raises(PermissionDenied):
            await client.publish("orders.denied")
    async with Client.connect(url, token="atp_reader.wrong") as client:
        with pytest.raises(Unauthenticated):
            await client.counts()


async def test_a_python_worker_consumes_over_grpc(api_server):
    async with Client.connect(api_server.url, token=api_server.tokens["admin"]) as client:
        ids = [(await client.publish("orders.remote-worker", n)).id for n in range(2)]
        with pytest.raises(ConfigError):
            client.retrieve("orders.*")
    url = f"grpc://{api_server.grpc_target}"
    async with Client.connect(url, token=api_server.tokens["consumer"]) as worker:
        seen = []
        stream = worker.retrieve("orders.remote-worker", group="py", max_in_flight=2)
        async for delivery in stream:
            assert await delivery.heartbeat() is LeaseStatus.HELD
            if delivery.task.payload == 0:
                await delivery.ack({"done": delivery.task.payload})
            else:
                assert await delivery.nack("no", terminate=True) is State.DEAD
            seen.append(delivery.task.id)
            if len(seen) == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
    assert sorted(seen) == sorted(ids)
    async with Client.connect(api_server.url, token=api_server.tokens["reader"]) as client:
        done = await client.get(ids[0])
        states = {(await client.get(i)).state for i in ids}
    assert done.result == {"done": 0}
    assert states == {State.SUCCEEDED, State.DEAD}


async def test_schedule_methods_over_either_transport(api_server, scheme):
    url, name = urls(api_server)[scheme], f"sdk-{scheme}"
    async with Client.connect(url, token=api_server.tokens["admin"]) as client:
        added = await client.add_schedule(
            name,
            "*/5 * * * *",
            "orders.beat",
            {"n": 1},
            tz="Asia/Tokyo",
            misfire="skip",
            overlap="skip",
        )
        assert (added.misfire, added.overlap, added.payload) == (
            Misfire.SKIP,
            Overlap.SKIP,
            {"n": 1},
        )
        assert await client.get_schedule(name) == added
        assert added in await client.list_schedules()
        assert (await client.pause_schedule(name)).paused
        assert not (await client.resume_schedule(name)).paused
        fired = await client.trigger_schedule(name)
        assert (await client.get(fired.id)).task.schedule == name
        with pytest.raises(AlreadyExists):
            await client.add_schedule(name, "@daily", "orders.beat")
        with pytest.raises(InvalidInput):
            await client.add_schedule(f"{name}-bad", "* * *", "orders.beat")
        await client.remove_schedule(name)
        with pytest.raises(NotFound):
            await client.get_schedule(name)
    async with Client.connect(url, token=api_server.tokens["reader"]) as client:
        with pytest.raises(PermissionDenied):
            await client.add_schedule(f"{name}-denied", "@daily", "orders.beat")
        assert f"{name}-denied" not in [s.name for s in await client.list_schedules()]


def approval(name: str) -> Workflow:
    flow = Workflow(name, version=1)
    wait = flow.wait_signal("go", name="wait")
    flow.step("orders.ship", name="ship", after=wait, compensate="orders.unship")
    return flow


async def test_workflow_methods_over_either_transport(api_server, scheme):
    url, name = urls(api_server)[scheme], f"sdk.{scheme}"
    async with Client.connect(url, token=api_server.tokens["admin"]) as admin:
        assert await admin.register_workflow(approval(name), approval(name)) == [True, False]
        definition = await admin.get_workflow(name)
        assert definition == approval(name).definition
        assert definition in await admin.list_workflows()
    async with Client.connect(url, token=api_server.tokens["publisher"]) as client:
        run = await client.start_workflow(name, {"order": 3}, run_id=f"sdk-run-{scheme}")
        assert (run.state, run.steps["wait"].state) == (RunState.RUNNING, StepState.ACTIVE)
        with pytest.raises(AlreadyExists):
            await client.start_workflow(name, run_id=run.id)
        signalled = await client.signal(run.id, "go", {"ok": 1})
        assert signalled.steps["wait"].result == {"ok": 1}
        assert signalled.steps["ship"].state is StepState.ACTIVE
        with pytest.raises(InvalidInput):
            await client.signal(run.id, "stop")
        with pytest.raises(PermissionDenied):
            await client.register_workflow(approval(f"{name}.denied"))
        with pytest.raises(PermissionDenied):
            await client.get_run(run.id)  # no read scope
        cancelled = await client.cancel_run(run.id)
        assert cancelled.state is RunState.CANCELLED
    async with Client.connect(url, token=api_server.tokens["reader"]) as reader:
        assert await reader.get_run(run.id) == cancelled
        page = await reader.list_runs(workflow=name, states=["cancelled"], limit=5)
        assert [r.id for r in page.items] == [run.id]
        with pytest.raises(NotFound):
            await reader.get_workflow(f"{name}.denied")
        with pytest.raises(NotFound):
            await reader.get_run("sdk-no-such-run")


def test_the_sync_client_reaches_the_server_too(api_server):
    from atp.sdk.sync import SyncClient

    with SyncClient.connect(api_server.url, token=api_server.tokens["admin"]) as client:
        published = client.publish("orders.sync", {"n": 1}, delay=60)
        assert client.get(published.id).state is State.SCHEDULED
        assert "HttpRemote" in repr(client.client)
