"""The scope of a workflow run whose steps publish no subject (only a signal and a sleep),
over both APIs of one running ``atp server``: a read, consume or unrelated publish token
may neither start, signal nor cancel it (403 / PERMISSION_DENIED, nothing changed);
``publish`` on the workflow's name or ``admin`` may."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from atp.sdk.wire.pb import workflows_pb2 as wpb
from atp.sdk.wire.pb import workflows_pb2_grpc
from tests.integration.api.conftest import ApiServer
from tests.integration.api.test_rest import assert_problem

pytestmark = pytest.mark.e2e

REFUSED = ("reader", "consumer", "outsider", "publisher")
"""Tokens without publish on ``quiet.*`` (the publisher may publish ``orders.*``)."""


def quiet(name: str) -> dict[str, Any]:
    """A definition with no task step: wait for signal ``go``, then sleep."""
    return {
        "name": name,
        "version": 1,
        "steps": [
            {"name": "wait", "kind": "signal", "signal": "go", "timeout": 3600},
            {"name": "nap", "kind": "sleep", "duration": 60, "after": ["wait"]},
        ],
    }


def setup(server: ApiServer, name: str) -> dict[str, Any]:
    """Register ``name`` and start one run of it as admin; the run."""
    with server.client("admin") as http:
        assert http.post("/v1/workflows", json=quiet(name)).status_code == 201
        run = http.post(f"/v1/workflows/{name}/runs")
    assert run.status_code == 201, run.text
    return run.json()


def runs_of(server: ApiServer, workflow: str) -> list[dict[str, Any]]:
    with server.client("reader") as http:
        return http.get("/v1/runs", params={"workflow": workflow}).json()["items"]


def test_rest_refuses_a_subjectless_run_to_tokens_without_publish_on_its_name(api_server):
    run = setup(api_server, "quiet.rest")
    for token in REFUSED:
        with api_server.client(token) as http:
            responses = [
                http.post("/v1/workflows/quiet.rest/runs"),
                http.post(f"/v1/runs/{run['id']}/signals", json={"name": "go"}),
                http.delete(f"/v1/runs/{run['id']}"),
            ]
        for response in responses:
            assert_problem(response, 403, "permission-denied")
            assert "quiet.rest" in response.json()["detail"]
    [after] = runs_of(api_server, "quiet.rest")
    assert (after["state"], after["signals"], after["revision"]) == ("RUNNING", {}, run["revision"])


def test_rest_lets_publish_on_the_workflows_name_drive_its_runs(api_server):
    setup(api_server, "orders.quiet")
    with api_server.client("publisher") as http:  # publish:orders.* covers the name
        started = http.post("/v1/workflows/orders.quiet/runs")
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        assert http.post(f"/v1/runs/{run_id}/signals", json={"name": "go"}).status_code == 200
        assert http.delete(f"/v1/runs/{run_id}").json()["state"] == "CANCELLED"
    with api_server.client("reader") as http:
        assert_problem(http.post("/v1/workflows/orders.quiet/runs"), 403, "permission-denied")


def test_grpc_refuses_a_subjectless_run_to_tokens_without_publish_on_its_name(api_server):
    channel = grpc.insecure_channel(api_server.grpc_target)
    stub = workflows_pb2_grpc.WorkflowsStub(channel)

    def auth(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {api_server.tokens[token]}"),)

    definition = json.dumps(quiet("quiet.grpc")).encode()
    stub.RegisterWorkflow(
        wpb.RegisterWorkflowRequest(definition=definition), metadata=auth("admin")
    )
    run = stub.StartRun(wpb.StartRunRequest(workflow="quiet.grpc"), metadata=auth("admin"))
    calls = [
        (stub.StartRun, wpb.StartRunRequest(workflow="quiet.grpc")),
        (stub.SignalRun, wpb.SignalRunRequest(run_id=run.id, name="go")),
        (stub.CancelRun, wpb.RunId(id=run.id)),
    ]
    for token in REFUSED:
        for call, message in calls:
            with pytest.raises(grpc.RpcError) as caught:
                call(message, metadata=auth(token))
            assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    after = stub.GetRun(wpb.RunId(id=run.id), metadata=auth("reader"))
    assert (after.state, after.revision) == ("RUNNING", run.revision)
    assert len(runs_of(api_server, "quiet.grpc")) == 1
    channel.close()
