"""The gRPC API of a running ``atp server`` under hostile or careless callers: consumers
that disconnect holding a task, requests that are not protobuf, huge ids and batches,
and a task whose error was huge when it was reported."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from atp.sdk.wire.pb import (
    consumer_pb2,
    schedules_pb2,
    schedules_pb2_grpc,
    tasks_pb2,
    workflows_pb2,
    workflows_pb2_grpc,
)
from atp.sdk.wire.pb import consumer_pb2 as cpb
from atp.sdk.wire.pb import schedules_pb2 as spb
from atp.sdk.wire.pb import tasks_pb2 as pb
from atp.sdk.wire.pb import workflows_pb2 as wpb
from tests.integration.api.conftest import ApiServer
from tests.integration.api.test_grpc import Stubs, get, publish

pytestmark = pytest.mark.e2e

SERVICES = [
    service
    for module in (tasks_pb2, consumer_pb2, schedules_pb2, workflows_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
]
MAX_DETAIL = 600  # the server keeps 500 characters of a message, plus its cut marker


@pytest.fixture(scope="module")
def stubs(api_server: ApiServer) -> Iterator[Stubs]:
    made = Stubs(api_server)
    yield made
    made.channel.close()


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def settled(stubs: Stubs, task_id: str) -> pb.TaskRecord:
    """The task's record once it is no longer RUNNING (a bounded poll)."""
    deadline = time.monotonic() + 10
    while get(stubs, task_id).state == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    return get(stubs, task_id)


# -- consumers that go away --------------------------------------------------------------


def test_a_task_that_kills_every_consumer_ends_dead_after_max_attempts(stubs):
    task_id = publish(stubs, "orders.poison", {"kills": "consumers"}, max_attempts=3)
    request = cpb.RetrieveRequest(pattern="orders.poison", group="gp", max_in_flight=1, lease=30)
    for attempt in (1, 2, 3):
        stream = stubs.consumer.Retrieve(request, metadata=stubs.auth("consumer"))
        held = next(stream)
        assert (held.task.id, held.task.attempt) == (task_id, attempt)
        stream.cancel()  # the consumer dies holding the task
        record = settled(stubs, task_id)
    assert record.state == "DEAD"
    assert record.attempt == 3
    assert [(e.attempt, e.kind) for e in record.errors] == [
        (1, "lease"),
        (2, "lease"),
        (3, "lease"),
    ]
    assert record.errors[-1].message == "the consumer disconnected while holding the task"


def test_a_task_cancelled_while_held_is_cancelled_when_its_consumer_goes_away(stubs):
    task_id = publish(stubs, "orders.held-cancel")
    request = cpb.RetrieveRequest(pattern="orders.held-cancel", group="gc", max_in_flight=1)
    stream = stubs.consumer.Retrieve(request, metadata=stubs.auth("consumer"))
    assert next(stream).task.id == task_id
    asked = stubs.tasks.CancelTask(pb.TaskId(id=task_id), metadata=stubs.auth("admin"))
    assert asked.cancel_requested
    stream.cancel()
    assert settled(stubs, task_id).state == "CANCELLED"


# -- malformed requests ------------------------------------------------------------------


def _raw_call(stubs: Stubs, service, method, data: bytes, name: str | None):
    path = f"/{service.full_name}/{method.name}"
    if method.server_streaming:
        return next(stubs.channel.unary_stream(path)(data, metadata=stubs.auth(name), timeout=10))
    return stubs.channel.unary_unary(path)(data, metadata=stubs.auth(name), timeout=10)


def test_a_malformed_request_is_invalid_argument_on_every_rpc_and_logs_no_traceback(
    stubs, api_server
):
    methods = [(s, m) for s in SERVICES for m in s.methods]
    assert len(methods) >= 29  # every RPC of the four services
    for service, method in methods:
        for data in (b"\xff\xff\xff", b"\x0a\x05ab"):  # a bad tag; a field past the end
            error = rpc_error(_raw_call, stubs, service, method, data, "admin")
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, method.full_name
            assert method.input_type.full_name in error.details()
            assert dict(error.trailing_metadata())["atp-problem-type"].endswith("invalid-input")
        error = rpc_error(_raw_call, stubs, service, method, b"\xff", None)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # authentication comes first
    log = api_server.log_text()
    assert "DecodeError" not in log
    assert "Traceback" not in log


# -- huge ids, inputs and batches --------------------------------------------------------


def test_a_huge_id_name_or_subject_is_invalid_argument_with_a_short_detail(stubs):
    huge = "A" * 1_000_000
    workflows = workflows_pb2_grpc.WorkflowsStub(stubs.channel)
    schedules = schedules_pb2_grpc.SchedulesStub(stubs.channel)
    calls = [
        (stubs.tasks.GetTask, pb.TaskId(id=huge)),
        (stubs.tasks.CancelTask, pb.TaskId(id=huge)),
        (stubs.tasks.GetDeadLetter, pb.TaskId(id=huge)),
        (stubs.tasks.Requeue, pb.RequeueRequest(id=huge)),
        (stubs.tasks.Purge, pb.PurgeRequest(ids=[huge])),
        (stubs.tasks.Publish, pb.PublishRequest(subject=huge)),
        (stubs.consumer.Ack, cpb.AckRequest(task_id=huge, lease_id="x")),
        (stubs.consumer.Nack, cpb.NackRequest(task_id="x", lease_id=huge)),
        (stubs.consumer.Heartbeat, cpb.HeartbeatRequest(task_ids=[huge], lease_id="x")),
        (workflows.GetRun, wpb.RunId(id=huge)),
        (workflows.CancelRun, wpb.RunId(id=huge)),
        (workflows.SignalRun, wpb.SignalRunRequest(run_id=huge, name="go")),
        (workflows.StartRun, wpb.StartRunRequest(workflow="w", run_id=huge)),
        (workflows.StartRun, wpb.StartRunRequest(workflow=huge)),
        (workflows.GetWorkflow, wpb.GetWorkflowRequest(name=huge)),
        (schedules.GetSchedule, spb.ScheduleName(name=huge)),
        (schedules.TriggerSchedule, spb.ScheduleName(name=huge)),
        (schedules.AddSchedule, spb.AddScheduleRequest(name=huge, expression="* * * * *")),
    ]
    for call, message in calls:
        error = rpc_error(call, message, metadata=stubs.auth("admin"))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (call, error.details()[:200])
        assert len(error.details()) < MAX_DETAIL


def test_a_huge_batch_is_refused_before_its_tasks_are_decoded(stubs):
    broken = pb.PublishRequest(subject="orders.batch", payload=b"{")  # not JSON
    big = pb.PublishBatchRequest(tasks=[broken] * 100_000)
    error = rpc_error(stubs.tasks.PublishBatch, big, metadata=stubs.auth("reader"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000 tasks" in error.details()
    small = pb.PublishBatchRequest(tasks=[broken] * 2)
    error = rpc_error(stubs.tasks.PublishBatch, small, metadata=stubs.auth("reader"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # scopes before payloads


# -- a huge error reported by a consumer -------------------------------------------------


def test_a_task_whose_error_was_5_mb_when_reported_still_reads(stubs):
    task_id = publish(stubs, "orders.huge-error")
    request = cpb.RetrieveRequest(pattern="orders.huge-error", group="gh", max_in_flight=1)
    stream = stubs.consumer.Retrieve(request, metadata=stubs.auth("consumer"))
    held = next(stream)
    nack = cpb.NackRequest(
        task_id=task_id, lease_id=held.lease_id, error="x" * 5_000_000, terminate=True
    )
    assert stubs.consumer.Nack(nack, metadata=stubs.auth("consumer")).state == "DEAD"
    stream.cancel()
    reader = stubs.auth("reader")
    record = get(stubs, task_id)
    assert "characters] …" in record.errors[-1].message
    assert len(record.errors[-1].message) <= 8192
    tasks = stubs.tasks.ListTasks(pb.ListTasksRequest(subject="orders.huge-error"), metadata=reader)
    dead = stubs.tasks.ListDeadLetters(
        pb.ListDeadLettersRequest(subject="orders.huge-error"), metadata=reader
    )
    assert [t.id for t in tasks.items] == [task_id]
    assert [t.id for t in dead.items] == [task_id]
