"""The gRPC API of a running ``atp server``, driven from the generated stubs alone (no SDK),
as a worker in another language would: every RPC, its scope denials, reflection, health."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from atp.sdk.wire.pb import consumer_pb2 as cpb
from atp.sdk.wire.pb import consumer_pb2_grpc, tasks_pb2_grpc
from atp.sdk.wire.pb import tasks_pb2 as pb
from tests.integration.api.conftest import ApiServer, kill_tasks

pytestmark = pytest.mark.e2e


class Stubs:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.tasks = tasks_pb2_grpc.TasksStub(self.channel)
        self.consumer = consumer_pb2_grpc.ConsumerStub(self.channel)

    def auth(self, name: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.server.tokens[name]}"),) if name else ()


@pytest.fixture(scope="module")
def stubs(api_server: ApiServer) -> Iterator[Stubs]:
    made = Stubs(api_server)
    yield made
    made.channel.close()


def code_of(call, *args, **kwargs) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    error = caught.value
    trailers = dict(error.trailing_metadata() or ())
    assert trailers["atp-problem-type"].startswith("urn:atp:problem:")
    return error.code()


def publish(stubs: Stubs, subject: str, payload: object = None, **fields) -> str:
    request = pb.PublishRequest(subject=subject, payload=json.dumps(payload).encode(), **fields)
    return stubs.tasks.Publish(request, metadata=stubs.auth("admin")).id


def get(stubs: Stubs, task_id: str) -> pb.TaskRecord:
    return stubs.tasks.GetTask(pb.TaskId(id=task_id), metadata=stubs.auth("admin"))


# -- the non-Python consumer path ------------------------------------------------------


def test_retrieve_ack_nack_heartbeat_from_generated_stubs(stubs):
    ids = [publish(stubs, "orders.consume", {"n": n}) for n in range(3)]
    request = cpb.RetrieveRequest(pattern="orders.consume", group="g1", max_in_flight=3, lease=30)
    stream = stubs.consumer.Retrieve(request, metadata=stubs.auth("consumer"))
    leased = [next(stream) for _ in range(3)]
    assert sorted(t.task.id for t in leased) == sorted(ids)
    first, second, third = leased
    assert first.task.state == "RUNNING"
    assert first.task.attempt == 1
    assert json.loads(first.task.payload)["n"] in (0, 1, 2)
    assert first.lease_until > time.time() + 20

    beat = stubs.consumer.Heartbeat(
        cpb.HeartbeatRequest(task_ids=[first.task.id], lease_id=first.lease_id, lease=60),
        metadata=stubs.auth("consumer"),
    )
    assert list(beat.statuses) == ["HELD"]
    assert get(stubs, first.task.id).lease_until > time.time() + 50

    stubs.consumer.Ack(
        cpb.AckRequest(task_id=first.task.id, lease_id=first.lease_id, result=b'{"ok": true}'),
        metadata=stubs.auth("consumer"),
    )
    done = get(stubs, first.task.id)
    assert done.state == "SUCCEEDED"
    assert json.loads(done.result) == {"ok": True}

    retried = stubs.consumer.Nack(
        cpb.NackRequest(
            task_id=second.task.id, lease_id=second.lease_id, delay=3600, error="try later"
        ),
        metadata=stubs.auth("consumer"),
    )
    assert retried.state == "SCHEDULED"
    record = get(stubs, second.task.id)
    assert record.state == "SCHEDULED"
    assert record.errors[-1].message == "try later"

    dead = stubs.consumer.Nack(
        cpb.NackRequest(
            task_id=third.task.id, lease_id=third.lease_id, error="poison", terminate=True
        ),
        metadata=stubs.auth("consumer"),
    )
    assert dead.state == "DEAD"
    assert get(stubs, third.task.id).state == "DEAD"
    stream.cancel()

    assert code_of(
        stubs.consumer.Ack,
        cpb.AckRequest(task_id=first.task.id, lease_id=first.lease_id),
        metadata=stubs.auth("consumer"),
    ) == (grpc.StatusCode.FAILED_PRECONDITION)


def test_retrieve_flow_control_and_give_back_on_close(stubs):
    ids = [publish(stubs, "orders.flow", n) for n in range(3)]
    request = cpb.RetrieveRequest(pattern="orders.flow", group="g2", max_in_flight=1, lease=30)
    stream = stubs.consumer.Retrieve(request, metadata=stubs.auth("consumer"))
    held = next(stream)
    running = [i for i in ids if get(stubs, i).state == "RUNNING"]
    assert running == [held.task.id]  # one in flight: the others wait
    stubs.consumer.Ack(
        cpb.AckRequest(task_id=held.task.id, lease_id=held.lease_id),
        metadata=stubs.auth("consumer"),
    )
    following = next(stream)
    assert following.task.id != held.task.id
    stream.cancel()
    deadline = time.monotonic() + 10
    while get(stubs, following.task.id).state == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    record = get(stubs, following.task.id)
    assert record.state in ("SCHEDULED", "READY")
    assert record.attempt == 1  # given back at once, its attempt spent
    assert record.errors[-1].kind == "lease"


def test_consumer_rpcs_refuse_outside_scope(stubs):
    task_id = publish(stubs, "orders.guarded")
    request = cpb.RetrieveRequest(pattern="orders.guarded", group="g3", max_in_flight=1)
    for name in ("outsider", "publisher", "reader"):
        stream = stubs.consumer.Retrieve(request, metadata=stubs.auth(name))
        assert code_of(next, stream) == grpc.StatusCode.PERMISSION_DENIED
    wide = cpb.RetrieveRequest(pattern=">", group="g3", max_in_flight=1)
    assert code_of(next, stubs.consumer.Retrieve(wide, metadata=stubs.auth("consumer"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert code_of(next, stubs.consumer.Retrieve(request)) == grpc.StatusCode.UNAUTHENTICATED
    stream = stubs.consumer.Retrieve(request, metadata=stubs.auth("consumer"))
    held = next(stream)
    for call, message in [
        (stubs.consumer.Ack, cpb.AckRequest(task_id=task_id, lease_id=held.lease_id)),
        (stubs.consumer.Nack, cpb.NackRequest(task_id=task_id, lease_id=held.lease_id)),
        (
            stubs.consumer.Heartbeat,
            cpb.HeartbeatRequest(task_ids=[task_id], lease_id=held.lease_id),
        ),
    ]:
        assert code_of(call, message, metadata=stubs.auth("outsider")) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    assert get(stubs, task_id).state == "RUNNING"
    bad = cpb.NackRequest(task_id=task_id, lease_id=held.lease_id, delay=-1)
    assert code_of(stubs.consumer.Nack, bad, metadata=stubs.auth("consumer")) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    stream.cancel()


# -- the task RPCs -----------------------------------------------------------------------


def test_publish_get_cancel_list_counts(stubs):
    admin = stubs.auth("admin")
    first = stubs.tasks.Publish(
        pb.PublishRequest(subject="orders.rpc", payload=b"[1]", idempotency_key="g-1", delay=600),
        metadata=admin,
    )
    again = stubs.tasks.Publish(
        pb.PublishRequest(subject="orders.rpc", payload=b"[1]", idempotency_key="g-1"),
        metadata=admin,
    )
    assert first.created
    assert not again.created
    assert first.id == again.id
    batch = stubs.tasks.PublishBatch(
        pb.PublishBatchRequest(
            tasks=[pb.PublishRequest(subject="orders.rpc", delay=600)] * 2, idempotency_key="gb"
        ),
        metadata=stubs.auth("publisher"),
    )
    assert len(batch.tasks) == 2
    assert all(t.created for t in batch.tasks)
    record = get(stubs, first.id)
    assert record.state == "SCHEDULED"
    assert json.loads(record.payload) == [1]
    page = stubs.tasks.ListTasks(
        pb.ListTasksRequest(subject="orders.rpc", limit=2), metadata=stubs.auth("reader")
    )
    assert len(page.items) == 2
    assert page.HasField("next_cursor")
    rest = stubs.tasks.ListTasks(
        pb.ListTasksRequest(subject="orders.rpc", cursor=page.next_cursor),
        metadata=stubs.auth("reader"),
    )
    assert len(rest.items) == 1
    assert not rest.HasField("next_cursor")
    counts = stubs.tasks.Counts(pb.CountsRequest(), metadata=stubs.auth("reader"))
    assert any(c.subject == "orders.rpc" and c.count == 3 for c in counts.counts)
    cancelled = stubs.tasks.CancelTask(pb.TaskId(id=first.id), metadata=stubs.auth("publisher"))
    assert cancelled.state == "CANCELLED"


def test_task_rpcs_refuse_outside_scope_and_bad_input(stubs):
    task_id = publish(stubs, "orders.deny", delay=600)
    denied = [
        (stubs.tasks.Publish, pb.PublishRequest(subject="billing.x"), "publisher"),
        (
            stubs.tasks.PublishBatch,
            pb.PublishBatchRequest(tasks=[pb.PublishRequest(subject="billing.x")]),
            "publisher",
        ),
        (stubs.tasks.GetTask, pb.TaskId(id=task_id), "publisher"),
        (stubs.tasks.CancelTask, pb.TaskId(id=task_id), "outsider"),
        (stubs.tasks.ListTasks, pb.ListTasksRequest(), "consumer"),
        (stubs.tasks.Counts, pb.CountsRequest(), "publisher"),
        (stubs.tasks.ListDeadLetters, pb.ListDeadLettersRequest(), "publisher"),
        (stubs.tasks.GetDeadLetter, pb.TaskId(id=task_id), "publisher"),
        (stubs.tasks.Requeue, pb.RequeueRequest(id=task_id), "reader"),
        (stubs.tasks.Purge, pb.PurgeRequest(all=True), "reader"),
    ]
    for call, message, name in denied:
        assert code_of(call, message, metadata=stubs.auth(name)) == (
            grpc.StatusCode.PERMISSION_DENIED
        ), call
        assert code_of(call, message) == grpc.StatusCode.UNAUTHENTICATED
    assert get(stubs, task_id).state == "SCHEDULED"
    admin = stubs.auth("admin")
    assert code_of(stubs.tasks.GetTask, pb.TaskId(id="01NOPE"), metadata=admin) == (
        grpc.StatusCode.NOT_FOUND
    )
    for message in (
        pb.PublishRequest(subject="a..b"),
        pb.PublishRequest(subject="a", payload=b"{"),
    ):
        assert code_of(stubs.tasks.Publish, message, metadata=admin) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    assert code_of(stubs.tasks.ListTasks, pb.ListTasksRequest(limit=5000), metadata=admin) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert code_of(stubs.tasks.Purge, pb.PurgeRequest(), metadata=admin) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_dead_letter_rpcs(stubs, api_server):
    ids = [publish(stubs, "orders.grpc-dlq", n) for n in range(3)]
    kill_tasks(api_server.store, ids)
    reader, admin = stubs.auth("reader"), stubs.auth("admin")
    page = stubs.tasks.ListDeadLetters(
        pb.ListDeadLettersRequest(subject="orders.grpc-dlq"), metadata=reader
    )
    assert sorted(t.id for t in page.items) == sorted(ids)
    assert stubs.tasks.GetDeadLetter(pb.TaskId(id=ids[0]), metadata=reader).state == "DEAD"
    back = stubs.tasks.Requeue(
        pb.RequeueRequest(id=ids[0], delay=600, payload=b'"new"'), metadata=admin
    )
    assert back.state == "SCHEDULED"
    assert json.loads(back.payload) == "new"
    assert code_of(stubs.tasks.GetDeadLetter, pb.TaskId(id=ids[0]), metadata=reader) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert code_of(stubs.tasks.Requeue, pb.RequeueRequest(id=ids[0]), metadata=admin) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    purged = stubs.tasks.Purge(pb.PurgeRequest(ids=[ids[1]]), metadata=admin)
    assert purged.purged == 1
    assert stubs.tasks.Purge(pb.PurgeRequest(all=True), metadata=admin).purged >= 1


# -- reflection and health ---------------------------------------------------------------


def test_reflection_lists_the_services_and_health_serves(stubs):
    reflection = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    answers = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in next(answers).list_services_response.service}
    assert {"atp.v1.Tasks", "atp.v1.Consumer", "grpc.health.v1.Health"} <= names
    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service in ("", "atp.v1.Tasks", "atp.v1.Consumer"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_an_oversized_result_is_refused_and_the_lease_kept(stubs):
    task_id = publish(stubs, "orders.big-result")
    request = cpb.RetrieveRequest(pattern="orders.big-result", group="g4", max_in_flight=1)
    stream = stubs.consumer.Retrieve(request, metadata=stubs.auth("consumer"))
    held = next(stream)
    huge = json.dumps("x" * 1_100_000).encode()
    ack = cpb.AckRequest(task_id=task_id, lease_id=held.lease_id, result=huge)
    assert code_of(stubs.consumer.Ack, ack, metadata=stubs.auth("consumer")) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert get(stubs, task_id).state == "RUNNING"
    stubs.consumer.Ack(
        cpb.AckRequest(task_id=task_id, lease_id=held.lease_id), metadata=stubs.auth("consumer")
    )
    assert get(stubs, task_id).state == "SUCCEEDED"
    stream.cancel()
