"""``atp.v1.Schedules`` and ``atp.v1.Workflows`` of a running ``atp server``, driven from
the generated stubs alone: every RPC, its scope denials and its bad input, and workflow
steps settled by a remote consumer (``Retrieve``/``Ack``/``Nack``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from atp.sdk.wire.pb import consumer_pb2 as cpb
from atp.sdk.wire.pb import consumer_pb2_grpc, schedules_pb2_grpc, workflows_pb2_grpc
from atp.sdk.wire.pb import schedules_pb2 as spb
from atp.sdk.wire.pb import workflows_pb2 as wpb
from tests.integration.api.conftest import ApiServer
from tests.integration.api.flows import definition, schedule
from tests.integration.api.test_grpc import code_of

pytestmark = pytest.mark.e2e

Code = grpc.StatusCode


class Stubs:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.schedules = schedules_pb2_grpc.SchedulesStub(self.channel)
        self.workflows = workflows_pb2_grpc.WorkflowsStub(self.channel)

    def auth(self, name: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.server.tokens[name]}"),) if name else ()


@pytest.fixture(scope="module")
def stubs(api_server: ApiServer) -> Iterator[Stubs]:
    made = Stubs(api_server)
    yield made
    made.channel.close()


def add_request(name: str, **fields: object) -> spb.AddScheduleRequest:
    body = {**schedule(name), **fields}
    body["payload"] = json.dumps(body["payload"]).encode()
    return spb.AddScheduleRequest(**body)


def register(stubs: Stubs, name: str, token: str = "admin", **kwargs: object) -> bool:
    text = json.dumps(definition(name, **kwargs)).encode()  # type: ignore[arg-type]
    request = wpb.RegisterWorkflowRequest(definition=text)
    return stubs.workflows.RegisterWorkflow(request, metadata=stubs.auth(token)).created


def schedule_names(stubs: Stubs) -> list[str]:
    found = stubs.schedules.ListSchedules(spb.ListSchedulesRequest(), metadata=stubs.auth("reader"))
    return [s.name for s in found.items]


# -- schedules -------------------------------------------------------------------------


def test_schedule_rpcs(stubs):
    admin = stubs.auth("admin")
    added = stubs.schedules.AddSchedule(add_request("grpc-life", misfire="all"), metadata=admin)
    assert (added.tz, added.misfire, added.overlap, added.paused) == (
        "Europe/Paris",
        "all",
        "allow",
        False,
    )
    assert json.loads(added.payload) == {"kind": "hourly"}
    assert added.next_tick > time.time()
    assert not added.HasField("last_tick")
    name = spb.ScheduleName(name="grpc-life")
    assert stubs.schedules.GetSchedule(name, metadata=stubs.auth("reader")) == added
    assert "grpc-life" in schedule_names(stubs)
    assert stubs.schedules.PauseSchedule(name, metadata=admin).paused
    assert not stubs.schedules.ResumeSchedule(name, metadata=admin).paused
    fired = stubs.schedules.TriggerSchedule(name, metadata=admin)
    assert fired.created
    stubs.schedules.RemoveSchedule(name, metadata=admin)
    for call in (
        stubs.schedules.GetSchedule,
        stubs.schedules.RemoveSchedule,
        stubs.schedules.TriggerSchedule,
        stubs.schedules.PauseSchedule,
    ):
        assert code_of(call, name, metadata=admin) is Code.NOT_FOUND


def test_schedule_defaults_bad_input_and_a_taken_name(stubs):
    admin = stubs.auth("admin")
    bare = spb.AddScheduleRequest(name="grpc-bare", expression="@daily", subject="orders.d")
    added = stubs.schedules.AddSchedule(bare, metadata=admin)
    assert (added.tz, added.misfire, added.overlap) == ("UTC", "once", "allow")
    assert code_of(stubs.schedules.AddSchedule, bare, metadata=admin) is Code.ALREADY_EXISTS
    bad = (
        {"expression": "* * *"},
        {"tz": "Nowhere/Land"},
        {"name": "a b"},
        {"subject": "a b"},
        {"misfire": "maybe"},
        {"payload": b"{not json"},
    )
    for fields in bad:
        request = add_request("grpc-bad")
        for key, value in fields.items():
            setattr(request, key, value)
        assert code_of(stubs.schedules.AddSchedule, request, metadata=admin) is (
            Code.INVALID_ARGUMENT
        )
    assert "grpc-bad" not in schedule_names(stubs)


@pytest.mark.parametrize("token", ["reader", "publisher", "consumer"])
def test_schedule_changes_need_admin(stubs, token):
    name = f"grpc-deny-{token}"
    before = stubs.schedules.AddSchedule(add_request(name), metadata=stubs.auth("admin"))
    who, message = stubs.auth(token), spb.ScheduleName(name=name)
    assert code_of(stubs.schedules.AddSchedule, add_request(f"{name}-new"), metadata=who) is (
        Code.PERMISSION_DENIED
    )
    for call in (
        stubs.schedules.PauseSchedule,
        stubs.schedules.ResumeSchedule,
        stubs.schedules.TriggerSchedule,
        stubs.schedules.RemoveSchedule,
    ):
        assert code_of(call, message, metadata=who) is Code.PERMISSION_DENIED
    if token != "reader":
        assert code_of(stubs.schedules.GetSchedule, message, metadata=who) is (
            Code.PERMISSION_DENIED
        )
    assert stubs.schedules.GetSchedule(message, metadata=stubs.auth("admin")) == before
    assert f"{name}-new" not in schedule_names(stubs)


# -- workflows -------------------------------------------------------------------------


def test_workflow_rpcs(stubs):
    admin, reader, publisher = stubs.auth("admin"), stubs.auth("reader"), stubs.auth("publisher")
    assert register(stubs, "grpc.run")
    assert not register(stubs, "grpc.run")
    got = stubs.workflows.GetWorkflow(wpb.GetWorkflowRequest(name="grpc.run"), metadata=reader)
    assert (got.name, got.version) == ("grpc.run", 1)
    assert json.loads(got.definition)["steps"][1]["compensate"] == "orders.unship"
    listed = stubs.workflows.ListWorkflows(wpb.ListWorkflowsRequest(), metadata=reader)
    assert "grpc.run" in [d.name for d in listed.items]
    start = wpb.StartRunRequest(workflow="grpc.run", input=b'{"order": 1}', run_id="grpc-run-1")
    run = stubs.workflows.StartRun(start, metadata=publisher)
    assert (run.id, run.state, json.loads(run.input)) == ("grpc-run-1", "RUNNING", {"order": 1})
    assert [(s.name, s.state) for s in run.steps] == [("wait", "ACTIVE"), ("ship", "PENDING")]
    assert code_of(stubs.workflows.StartRun, start, metadata=admin) is Code.ALREADY_EXISTS
    signal = wpb.SignalRunRequest(run_id=run.id, name="go", payload=b'{"ok": true}')
    signalled = stubs.workflows.SignalRun(signal, metadata=publisher)
    wait, ship = signalled.steps
    assert (wait.state, json.loads(wait.result)) == ("SUCCEEDED", {"ok": True})
    assert ship.state == "ACTIVE"
    assert ship.HasField("task_id")
    assert json.loads(signalled.signals["go"]) == {"ok": True}
    assert code_of(stubs.workflows.SignalRun, signal, metadata=admin) is Code.FAILED_PRECONDITION
    unknown = wpb.SignalRunRequest(run_id=run.id, name="nope")
    assert code_of(stubs.workflows.SignalRun, unknown, metadata=admin) is Code.INVALID_ARGUMENT
    read = stubs.workflows.GetRun(wpb.RunId(id=run.id), metadata=reader)
    assert list(read.steps) == list(signalled.steps)
    page = stubs.workflows.ListRuns(
        wpb.ListRunsRequest(workflow="grpc.run", states=["running"], limit=5), metadata=reader
    )
    assert [r.id for r in page.items] == [run.id]
    assert not page.HasField("next_cursor")
    cancelled = stubs.workflows.CancelRun(wpb.RunId(id=run.id), metadata=publisher)
    assert cancelled.state == "CANCELLED"
    assert cancelled.HasField("finished_at")
    assert code_of(stubs.workflows.GetRun, wpb.RunId(id="nope"), metadata=reader) is Code.NOT_FOUND
    bad_list = wpb.ListRunsRequest(states=["DANCING"])
    assert code_of(stubs.workflows.ListRuns, bad_list, metadata=reader) is Code.INVALID_ARGUMENT


def test_bad_definitions_are_refused_and_store_nothing(stubs):
    admin = stubs.auth("admin")
    cycle = definition("grpc.bad")
    cycle["steps"][0]["after"] = ["ship"]
    for text in (b"{not json", b"[]", json.dumps(cycle).encode()):
        request = wpb.RegisterWorkflowRequest(definition=text)
        assert code_of(stubs.workflows.RegisterWorkflow, request, metadata=admin) is (
            Code.INVALID_ARGUMENT
        )
    missing = wpb.GetWorkflowRequest(name="grpc.bad")
    assert code_of(stubs.workflows.GetWorkflow, missing, metadata=admin) is Code.NOT_FOUND
    register(stubs, "grpc.bad")
    other = json.dumps(definition("grpc.bad", subject="orders.else")).encode()
    request = wpb.RegisterWorkflowRequest(definition=other)
    assert code_of(stubs.workflows.RegisterWorkflow, request, metadata=admin) is (
        Code.ALREADY_EXISTS
    )


def test_workflow_scopes_and_denials_change_nothing(stubs):
    register(stubs, "grpc.scoped")
    register(stubs, "grpc.billing", subject="billing.charge")
    run = stubs.workflows.StartRun(
        wpb.StartRunRequest(workflow="grpc.scoped"), metadata=stubs.auth("admin")
    )
    for token in ("publisher", "reader", "consumer", "outsider"):
        with pytest.raises(grpc.RpcError) as caught:
            register(stubs, f"grpc.by-{token}", token=token)
        assert caught.value.code() is Code.PERMISSION_DENIED
    billing = wpb.StartRunRequest(workflow="grpc.billing")
    assert code_of(stubs.workflows.StartRun, billing, metadata=stubs.auth("publisher")) is (
        Code.PERMISSION_DENIED
    )
    for token in ("reader", "consumer", "outsider"):
        who = stubs.auth(token)
        calls = [
            (stubs.workflows.StartRun, wpb.StartRunRequest(workflow="grpc.scoped")),
            (stubs.workflows.SignalRun, wpb.SignalRunRequest(run_id=run.id, name="go")),
            (stubs.workflows.CancelRun, wpb.RunId(id=run.id)),
        ]
        for call, message in calls:
            assert code_of(call, message, metadata=who) is Code.PERMISSION_DENIED
    reader = stubs.auth("reader")
    runs = stubs.workflows.ListRuns(wpb.ListRunsRequest(workflow="grpc.scoped"), metadata=reader)
    assert [(r.id, r.state, r.revision) for r in runs.items] == [(run.id, "RUNNING", run.revision)]
    none = stubs.workflows.ListRuns(wpb.ListRunsRequest(workflow="grpc.billing"), metadata=reader)
    assert list(none.items) == []
    publisher = stubs.auth("publisher")  # no read scope
    reads = [
        (stubs.workflows.GetWorkflow, wpb.GetWorkflowRequest(name="grpc.scoped")),
        (stubs.workflows.ListWorkflows, wpb.ListWorkflowsRequest()),
        (stubs.workflows.GetRun, wpb.RunId(id=run.id)),
        (stubs.workflows.ListRuns, wpb.ListRunsRequest()),
        (stubs.schedules.ListSchedules, spb.ListSchedulesRequest()),
    ]
    for call, message in reads:
        assert code_of(call, message, metadata=publisher) is Code.PERMISSION_DENIED


def test_every_new_rpc_refuses_a_missing_token(stubs):
    calls = [
        (stubs.schedules.AddSchedule, add_request("grpc-anon")),
        (stubs.schedules.ListSchedules, spb.ListSchedulesRequest()),
        *(
            (getattr(stubs.schedules, name), spb.ScheduleName(name="x"))
            for name in (
                "GetSchedule",
                "PauseSchedule",
                "ResumeSchedule",
                "TriggerSchedule",
                "RemoveSchedule",
            )
        ),
        (stubs.workflows.RegisterWorkflow, wpb.RegisterWorkflowRequest(definition=b"{}")),
        (stubs.workflows.GetWorkflow, wpb.GetWorkflowRequest(name="x")),
        (stubs.workflows.ListWorkflows, wpb.ListWorkflowsRequest()),
        (stubs.workflows.StartRun, wpb.StartRunRequest(workflow="x")),
        (stubs.workflows.GetRun, wpb.RunId(id="x")),
        (stubs.workflows.ListRuns, wpb.ListRunsRequest()),
        (stubs.workflows.SignalRun, wpb.SignalRunRequest(run_id="x", name="go")),
        (stubs.workflows.CancelRun, wpb.RunId(id="x")),
    ]
    assert len(calls) == 15
    for call, message in calls:
        assert code_of(call, message) is Code.UNAUTHENTICATED


def test_reflection_lists_the_new_services(stubs):
    reflection = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = reflection.ServerReflectionInfo(iter([request]))
    services = {s.name for s in answer.list_services_response.service}
    assert {"atp.v1.Schedules", "atp.v1.Workflows"} <= services


def test_a_step_acked_or_nacked_over_grpc_moves_its_run_on_at_once(stubs):
    register(stubs, "grpc.remote-steps", subject="orders.remote-step")
    publisher, reader = stubs.auth("publisher"), stubs.auth("reader")
    runs = []
    for n in range(2):
        start = wpb.StartRunRequest(workflow="grpc.remote-steps", input=str(n).encode())
        run = stubs.workflows.StartRun(start, metadata=publisher)
        stubs.workflows.SignalRun(
            wpb.SignalRunRequest(run_id=run.id, name="go"), metadata=publisher
        )
        runs.append(run.id)
    consumer = consumer_pb2_grpc.ConsumerStub(stubs.channel)
    request = cpb.RetrieveRequest(pattern="orders.remote-step", group="wf", max_in_flight=2)
    stream = consumer.Retrieve(request, metadata=stubs.auth("consumer"))
    leased = {item.task.workflow_run: item for item in (next(stream), next(stream))}
    ok, bad = leased[runs[0]], leased[runs[1]]
    consumer.Ack(
        cpb.AckRequest(task_id=ok.task.id, lease_id=ok.lease_id, result=b'{"sent": 1}'),
        metadata=stubs.auth("consumer"),
    )
    consumer.Nack(
        cpb.NackRequest(
            task_id=bad.task.id, lease_id=bad.lease_id, error="no stock", terminate=True
        ),
        metadata=stubs.auth("consumer"),
    )
    stream.cancel()  # after settling: a stream that ends gives back what it still holds
    done = stubs.workflows.GetRun(wpb.RunId(id=runs[0]), metadata=reader)
    failed = stubs.workflows.GetRun(wpb.RunId(id=runs[1]), metadata=reader)
    ship = done.steps[1]
    assert (done.state, json.loads(done.result)) == ("SUCCEEDED", {"ship": {"sent": 1}})
    assert (ship.state, ship.attempts, json.loads(ship.result)) == ("SUCCEEDED", 1, {"sent": 1})
    assert ship.started_at <= ship.finished_at <= done.finished_at
    assert failed.steps[1].state == "FAILED"
    assert "no stock" in failed.steps[1].error
    assert failed.state in ("COMPENSATING", "FAILED")
