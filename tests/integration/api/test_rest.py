"""The REST API of a running ``atp server`` on a SQLite store file: every endpoint, its
scope denials (403, nothing changed), its limits (4xx) and its problem documents."""

from __future__ import annotations

import time

import grpc
import httpx
import pytest

from atp.sdk.wire.pb import tasks_pb2 as pb
from atp.sdk.wire.pb import tasks_pb2_grpc
from tests.integration.api.conftest import ApiServer, kill_tasks, make_server

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def publish(http: httpx.Client, subject: str = "orders.close", **body: object) -> dict:
    response = http.post("/v1/tasks", json={"subject": subject, **body})
    assert response.status_code == 201, response.text
    return response.json()


def total(server: ApiServer, subject: str) -> int:
    with server.client("admin") as http:
        return len(
            http.get("/v1/tasks", params={"subject": subject, "limit": 1000}).json()["items"]
        )


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"urn:atp:problem:{slug}"
    assert body["status"] == status
    assert body["detail"]
    assert body["title"]
    return body


# -- health and the contract -----------------------------------------------------------


def test_health_ready_and_openapi_need_no_token(api_server):
    with api_server.client(None) as http:
        assert http.get("/healthz").json() == {"status": "ok", "checks": {}}
        ready = http.get("/readyz").json()
        assert ready == {"status": "ok", "checks": {"store": "ok", "coordinator": "ok"}}
        spec = http.get("/openapi.json").json()
    assert {
        "/v1/tasks",
        "/v1/tasks/batch",
        "/v1/tasks/{task_id}",
        "/v1/counts",
        "/v1/dead-letters",
        "/v1/dead-letters/{task_id}",
        "/v1/dead-letters/{task_id}/requeue",
        "/v1/dead-letters/purge",
    } <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/tasks"),
        ("POST", "/v1/tasks/batch"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/x"),
        ("DELETE", "/v1/tasks/x"),
        ("GET", "/v1/counts"),
        ("GET", "/v1/dead-letters"),
        ("GET", "/v1/dead-letters/x"),
        ("POST", "/v1/dead-letters/x/requeue"),
        ("POST", "/v1/dead-letters/purge"),
    ],
)
def test_every_route_refuses_a_missing_or_wrong_token(api_server, method, path):
    body = {"subject": "orders.close", "tasks": [], "ids": []}
    with api_server.client(None) as http:
        missing = http.request(method, path, json=body)
        wrong = http.request(
            method, path, json=body, headers={"Authorization": "Bearer atp_admin.not-the-secret"}
        )
    assert_problem(missing, 401, "unauthenticated")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(wrong, 401, "unauthenticated")


# -- publishing ------------------------------------------------------------------------


def test_publish_get_and_idempotency_key(api_server):
    with api_server.client("publisher") as http:
        first = http.post(
            "/v1/tasks",
            json={"subject": "orders.idem", "payload": {"n": 1}},
            headers={"Idempotency-Key": "k-1"},
        )
        again = http.post(
            "/v1/tasks",
            json={"subject": "orders.idem", "payload": {"n": 1}},
            headers={"Idempotency-Key": "k-1"},
        )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert not again.json()["created"]
    with api_server.client("reader") as http:
        task = http.get(f"/v1/tasks/{first.json()['id']}").json()
    assert task["payload"] == {"n": 1}
    assert task["idempotency_key"] == "k-1"
    assert task["state"] in ("READY", "SCHEDULED")


def test_publish_with_delay_and_options(api_server):
    with api_server.client("admin") as http:
        published = publish(
            http,
            "orders.later",
            payload=[1, 2],
            delay="1h",
            priority=3,
            max_attempts=2,
            timeout=5,
            headers={"h": "v"},
            retry={"base": 1, "factor": 2, "cap": 10, "jitter": False},
        )
        task = http.get(f"/v1/tasks/{published['id']}").json()
    assert task["state"] == "SCHEDULED"
    assert task["run_at"] > time.time() + 3500
    assert (task["priority"], task["max_attempts"], task["timeout"]) == (3, 2, 5.0)
    assert task["headers"] == {"h": "v"}


def test_publish_outside_scope_is_refused_and_writes_nothing(api_server):
    for name in ("publisher", "reader", "consumer"):
        with api_server.client(name) as http:
            response = http.post("/v1/tasks", json={"subject": "billing.charge"})
        assert_problem(response, 403, "permission-denied")
    assert total(api_server, "billing.charge") == 0


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"subject": "bad subject"}, 400, "invalid-input"),
        ({"subject": "orders.x", "delay": -1}, 400, "invalid-input"),
        ({"subject": "orders.x", "delay": "soon"}, 400, "invalid-input"),
        ({"subject": "orders.x", "delay": 1, "run_at": 2e9}, 400, "invalid-input"),
        ({"subject": "orders.x", "unknown": 1}, 400, "invalid-input"),
        ({"payload": 1}, 400, "invalid-input"),
        ({"subject": "orders.x", "payload": "x" * 1_100_000}, 413, "payload-too-large"),
    ],
)
def test_bad_input_is_a_problem_and_writes_nothing(api_server, body, status, slug):
    before = total(api_server, "orders.x")
    with api_server.client("admin") as http:
        assert_problem(http.post("/v1/tasks", json=body), status, slug)
    assert total(api_server, "orders.x") == before


def test_malformed_json_and_oversized_body_are_refused(api_server):
    with api_server.client("admin") as http:
        malformed = http.post(
            "/v1/tasks", content=b"{nope", headers={"content-type": "application/json"}
        )
        huge = http.post(
            "/v1/tasks",
            content=b"x" * (9 * 1_048_576),
            headers={"content-type": "application/json"},
        )
    assert_problem(malformed, 400, "invalid-input")
    assert_problem(huge, 413, "payload-too-large")


def test_batch_publish_all_or_nothing(api_server):
    tasks = [{"subject": "orders.batch", "payload": i} for i in range(3)]
    with api_server.client("publisher") as http:
        done = http.post("/v1/tasks/batch", json={"tasks": tasks}, headers={"Idempotency-Key": "b"})
        again = http.post(
            "/v1/tasks/batch", json={"tasks": tasks}, headers={"Idempotency-Key": "b"}
        )
        mixed = http.post("/v1/tasks/batch", json={"tasks": [*tasks, {"subject": "billing.x"}]})
        bad = http.post("/v1/tasks/batch", json={"tasks": [*tasks, {"subject": "orders..x"}]})
    assert done.status_code == 200
    ids = [t["id"] for t in done.json()["tasks"]]
    assert [t["id"] for t in again.json()["tasks"]] == ids
    assert not any(t["created"] for t in again.json()["tasks"])
    assert_problem(mixed, 403, "permission-denied")
    assert_problem(bad, 400, "invalid-input")
    assert total(api_server, "orders.batch") == 3


def test_batch_over_the_limit_is_refused(api_server):
    tasks = [{"subject": "orders.big"}] * 1001
    with api_server.client("admin") as http:
        assert_problem(http.post("/v1/tasks/batch", json={"tasks": tasks}), 400, "invalid-input")
    assert total(api_server, "orders.big") == 0


# -- reading ---------------------------------------------------------------------------


def test_get_needs_read_and_unknown_is_404(api_server):
    with api_server.client("admin") as http:
        task_id = publish(http, "orders.get")["id"]
        assert_problem(http.get("/v1/tasks/01NOPE"), 404, "not-found")
    for name in ("publisher", "consumer"):
        with api_server.client(name) as http:
            assert_problem(http.get(f"/v1/tasks/{task_id}"), 403, "permission-denied")


def test_list_filters_and_pages(api_server):
    with api_server.client("admin") as http:
        ids = [publish(http, "orders.page", payload=i)["id"] for i in range(5)]
        publish(http, "orders.page", delay=3600)
    seen, cursor = [], None
    with api_server.client("reader") as http:
        while True:
            params = {"subject": "orders.page", "state": ["READY"], "limit": 2}
            page = http.get(
                "/v1/tasks", params={**params, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            seen += [t["id"] for t in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids)
        assert_problem(http.get("/v1/tasks", params={"limit": 1001}), 400, "invalid-input")
        assert_problem(http.get("/v1/tasks", params={"subject": "a..b"}), 400, "invalid-input")
        assert_problem(http.get("/v1/tasks", params={"state": "NOPE"}), 400, "invalid-input")
    with api_server.client("publisher") as http:
        assert_problem(http.get("/v1/tasks"), 403, "permission-denied")


def test_counts(api_server):
    with api_server.client("admin") as http:
        publish(http, "orders.counted")
        publish(http, "orders.counted", delay=600)
    with api_server.client("reader") as http:
        counts = http.get("/v1/counts").json()["counts"]
    mine = {c["state"]: c["count"] for c in counts if c["subject"] == "orders.counted"}
    assert mine == {"READY": 1, "SCHEDULED": 1}
    with api_server.client("publisher") as http:
        assert_problem(http.get("/v1/counts"), 403, "permission-denied")


# -- cancelling ------------------------------------------------------------------------


def test_cancel_in_scope_out_of_scope_and_finished(api_server):
    with api_server.client("admin") as http:
        task_id = publish(http, "orders.cancel", delay=600)["id"]
    for name in ("outsider", "reader", "consumer"):
        with api_server.client(name) as http:
            assert_problem(http.delete(f"/v1/tasks/{task_id}"), 403, "permission-denied")
    with api_server.client("admin") as http:
        assert http.get(f"/v1/tasks/{task_id}").json()["state"] == "SCHEDULED"
    with api_server.client("publisher") as http:
        cancelled = http.delete(f"/v1/tasks/{task_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "CANCELLED"
        assert http.delete(f"/v1/tasks/{task_id}").json()["state"] == "CANCELLED"
        assert_problem(http.delete("/v1/tasks/01NOPE"), 404, "not-found")
    with api_server.client("admin") as http:
        dead = publish(http, "orders.cancel")["id"]
        kill_tasks(api_server.store, [dead])
        assert_problem(http.delete(f"/v1/tasks/{dead}"), 409, "state-conflict")


# -- dead letters ----------------------------------------------------------------------


def _dead(server: ApiServer, subject: str, count: int) -> list[str]:
    with server.client("admin") as http:
        ids = [publish(http, subject, payload=i)["id"] for i in range(count)]
    kill_tasks(server.store, ids)
    return ids


def test_dead_letters_list_and_inspect(api_server):
    ids = _dead(api_server, "orders.dlq", 2)
    with api_server.client("admin") as http:
        alive = publish(http, "orders.dlq")["id"]
    with api_server.client("reader") as http:
        listed = http.get("/v1/dead-letters", params={"subject": "orders.dlq"}).json()
        assert sorted(t["id"] for t in listed["items"]) == sorted(ids)
        one = http.get(f"/v1/dead-letters/{ids[0]}").json()
        assert one["state"] == "DEAD"
        assert one["errors"][0]["message"] == "boom"
        assert_problem(http.get(f"/v1/dead-letters/{alive}"), 404, "not-found")
        assert_problem(http.get("/v1/dead-letters", params={"limit": 0}), 400, "invalid-input")
    with api_server.client("publisher") as http:
        assert_problem(http.get("/v1/dead-letters"), 403, "permission-denied")
        assert_problem(http.get(f"/v1/dead-letters/{ids[0]}"), 403, "permission-denied")


def test_requeue_needs_admin(api_server):
    dead, other = _dead(api_server, "orders.requeue", 2)
    for name in ("reader", "publisher", "consumer"):
        with api_server.client(name) as http:
            response = http.post(f"/v1/dead-letters/{dead}/requeue", json={})
            assert_problem(response, 403, "permission-denied")
    with api_server.client("admin") as http:
        assert http.get(f"/v1/tasks/{dead}").json()["state"] == "DEAD"
        back = http.post(
            f"/v1/dead-letters/{dead}/requeue", json={"delay": "1h", "payload": {"new": 1}}
        )
        assert back.status_code == 200, back.text
        assert back.json()["state"] == "SCHEDULED"
        assert back.json()["payload"] == {"new": 1}
        kept = http.post(f"/v1/dead-letters/{other}/requeue").json()
        assert kept["payload"] == 1
        assert kept["attempt"] == 0
        assert_problem(http.post(f"/v1/dead-letters/{dead}/requeue"), 409, "state-conflict")
        assert_problem(http.post("/v1/dead-letters/01NOPE/requeue"), 404, "not-found")


def test_purge_needs_admin(api_server):
    one, _two, _three = _dead(api_server, "orders.purge", 3)
    for name in ("reader", "publisher"):
        with api_server.client(name) as http:
            response = http.post("/v1/dead-letters/purge", json={"ids": [one]})
            assert_problem(response, 403, "permission-denied")
    with api_server.client("admin") as http:
        assert http.get(f"/v1/dead-letters/{one}").status_code == 200
        assert http.post("/v1/dead-letters/purge", json={"ids": [one, "01NOPE"]}).json() == {
            "purged": 1
        }
        assert_problem(http.get(f"/v1/tasks/{one}"), 404, "not-found")
        left = http.post("/v1/dead-letters/purge", json={"ids": None}).json()["purged"]
        assert left >= 2
        assert http.get("/v1/dead-letters").json()["items"] == []


# -- rate limits -------------------------------------------------------------------------


def test_rate_limit_is_429_with_retry_after_and_changes_nothing(tmp_path):
    server = make_server(tmp_path, rate=0.01, burst=2).start()
    try:
        with server.client("admin") as http:
            assert [http.get("/v1/counts").status_code for _ in range(2)] == [200, 200]
            refused = http.post("/v1/tasks", json={"subject": "orders.limited"})
            body = assert_problem(refused, 429, "rate-limited")
            assert int(refused.headers["retry-after"]) >= 1
            assert "rate" in body["detail"]
        channel = grpc.insecure_channel(server.grpc_target)
        auth = (("authorization", f"Bearer {server.tokens['admin']}"),)
        with pytest.raises(grpc.RpcError) as caught:
            tasks_pb2_grpc.TasksStub(channel).Counts(pb.CountsRequest(), metadata=auth)
        channel.close()
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(caught.value.trailing_metadata())["retry-after"]) >= 1
        with server.client("reader") as http:  # another token has its own bucket
            assert http.get("/v1/tasks", params={"subject": "orders.limited"}).json()["items"] == []
    finally:
        server.stop()


def test_rate_limit_holds_across_two_server_processes(tmp_path):
    first = make_server(tmp_path, rate=0.01, burst=3)
    second = ApiServer(first.folder, first.store, first.tokens, first.env)
    first.start(), second.start()
    try:
        with first.client("reader") as a, second.client("reader") as b:
            codes = [
                a.get("/v1/counts").status_code,
                b.get("/v1/counts").status_code,
                a.get("/v1/counts").status_code,
            ]
            assert codes == [200, 200, 200]
            assert_problem(b.get("/v1/counts"), 429, "rate-limited")
            assert_problem(a.get("/v1/counts"), 429, "rate-limited")
    finally:
        first.stop()
        second.stop()


def test_metrics_are_mounted_from_the_prometheus_plugin(tmp_path):
    pytest.importorskip("prometheus_client")
    server = make_server(tmp_path, extra_env={"ATP_PLUGINS": "atp.plugins.prometheus"}).start()
    try:
        with server.client(None) as http:
            response = http.get("/metrics")
        assert response.status_code == 200
        assert "atp_" in response.text
    finally:
        server.stop()
