"""``atp server`` and ``atp dev --api`` as processes: graceful stop, leases given back,
and the development mode without tokens."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import grpc
import httpx
import pytest

from atp.core.model import State
from atp.plugins.sqlite.store import SqliteStore
from atp.sdk.wire.pb import consumer_pb2 as cpb
from atp.sdk.wire.pb import consumer_pb2_grpc
from tests.integration.api.conftest import REPO, ApiServer, make_server
from tests.services import free_port

pytestmark = pytest.mark.e2e


def record_state(store_url: str, task_id: str) -> tuple[State, int]:
    async def read() -> tuple[State, int]:
        store = SqliteStore.from_url(store_url)
        try:
            (record,) = await store.get([task_id])
        finally:
            await store.close()
        assert record is not None
        return record.state, record.task.attempt

    return asyncio.run(read())


def test_sigterm_stops_the_server_and_gives_leased_tasks_back(tmp_path):
    server: ApiServer = make_server(tmp_path, "--scheduler").start()
    with server.client("admin") as http:
        task_id = http.post("/v1/tasks", json={"subject": "orders.held"}).json()["id"]
    channel = grpc.insecure_channel(server.grpc_target)
    request = cpb.RetrieveRequest(pattern="orders.held", group="g", max_in_flight=1, lease=600)
    auth = (("authorization", f"Bearer {server.tokens['consumer']}"),)
    stream = consumer_pb2_grpc.ConsumerStub(channel).Retrieve(request, metadata=auth)
    assert next(stream).task.id == task_id
    assert record_state(server.store, task_id) == (State.RUNNING, 1)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    channel.close()
    state, attempt = record_state(server.store, task_id)
    assert state in (State.SCHEDULED, State.READY)
    assert attempt == 0  # given back, the attempt refunded: no lease to wait out


def test_dev_api_serves_without_tokens_and_runs_the_tasks(tmp_path):
    port = free_port()
    env = {
        "PYTHONPATH": str(REPO),
        "ATP_SERVER__PORT": str(port),
        "ATP_SERVER__GRPC_PORT": "0",
        "ATP_E2E_LEDGER": str(tmp_path / "ledger"),
        "PATH": "/usr/bin:/bin",
    }
    command = [
        sys.executable,
        "-m",
        "atp.adapters.cli",
        "--store",
        f"sqlite:///{tmp_path}/a.db",
        "dev",
        "tests.e2e.dev_app:app",
        "--api",
    ]
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = {"subject": "e2e.work", "payload": {"n": 7}}
        task_id = httpx.post(url + "/v1/tasks", json=body).json()["id"]
        deadline = time.monotonic() + 20
        while (task := httpx.get(f"{url}/v1/tasks/{task_id}").json())["state"] != "SUCCEEDED":
            assert time.monotonic() < deadline, task
            time.sleep(0.05)
        assert task["result"] == 7
        assert "authentication OFF" in (tmp_path / "dev.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
