"""The REST API's cron schedules and workflows on a running ``atp server`` (SQLite store):
every endpoint, its scope denials (403, nothing changed) and its bad input (4xx)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.api.conftest import ApiServer
from tests.integration.api.flows import definition, schedule
from tests.integration.api.test_rest import assert_problem

pytestmark = pytest.mark.e2e


def names(server: ApiServer) -> list[str]:
    with server.client("reader") as http:
        return [s["name"] for s in http.get("/v1/schedules").json()["items"]]


def runs_of(server: ApiServer, workflow: str) -> list[dict]:
    with server.client("reader") as http:
        page = http.get("/v1/runs", params={"workflow": workflow, "limit": 1000})
    assert page.status_code == 200, page.text
    return page.json()["items"]


def register(server: ApiServer, name: str, **kwargs: object) -> None:
    with server.client("admin") as http:
        response = http.post("/v1/workflows", json=definition(name, **kwargs))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text


# -- schedules -------------------------------------------------------------------------


def test_schedule_create_list_get_pause_resume_trigger_delete(api_server):
    with api_server.client("admin") as http:
        created = http.post("/v1/schedules", json=schedule("rest-life"))
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["expression"], body["tz"], body["misfire"], body["overlap"]) == (
            "0 * * * *",
            "Europe/Paris",
            "once",
            "allow",
        )
        assert body["next_tick"] > time.time()
        assert not body["paused"]
        assert http.get("/v1/schedules/rest-life").json() == body
        assert "rest-life" in [s["name"] for s in http.get("/v1/schedules").json()["items"]]
        paused = http.post("/v1/schedules/rest-life/pause").json()
        assert paused["paused"]
        assert not http.post("/v1/schedules/rest-life/resume").json()["paused"]
        fired = http.post("/v1/schedules/rest-life/trigger")
        assert fired.status_code == 200, fired.text
        task = http.get(f"/v1/tasks/{fired.json()['id']}").json()
        assert (task["subject"], task["schedule"]) == ("orders.report", "rest-life")
        assert task["payload"] == {"kind": "hourly"}
        removed = http.delete("/v1/schedules/rest-life")
        assert (removed.status_code, removed.content) == (204, b"")
        assert_problem(http.get("/v1/schedules/rest-life"), 404, "not-found")
        assert_problem(http.delete("/v1/schedules/rest-life"), 404, "not-found")
        assert_problem(http.post("/v1/schedules/rest-life/trigger"), 404, "not-found")
        assert http.get(f"/v1/tasks/{task['id']}").status_code == 200  # fired tasks stay


@pytest.mark.parametrize(
    "fields",
    [
        {"expression": "61 * * * *"},
        {"expression": "every hour"},
        {"tz": "Mars/Olympus"},
        {"name": "bad name"},
        {"subject": "bad subject"},
        {"misfire": "sometimes"},
        {"overlap": "never"},
        {"colour": "red"},
    ],
)
def test_a_bad_schedule_is_a_400_and_stores_nothing(api_server, fields):
    body = {**schedule("rest-bad"), **fields}
    with api_server.client("admin") as http:
        assert_problem(http.post("/v1/schedules", json=body), 400, "invalid-input")
    assert "rest-bad" not in names(api_server)
    assert "bad name" not in names(api_server)


def test_a_taken_name_is_a_409_and_changes_nothing(api_server):
    with api_server.client("admin") as http:
        first = http.post("/v1/schedules", json=schedule("rest-dup")).json()
        again = http.post("/v1/schedules", json=schedule("rest-dup", expression="@daily"))
        assert_problem(again, 409, "already-exists")
        assert http.get("/v1/schedules/rest-dup").json() == first


@pytest.mark.parametrize("token", ["reader", "publisher", "consumer", "outsider"])
def test_changing_a_schedule_needs_admin_and_a_denial_changes_nothing(api_server, token):
    name = f"rest-deny-{token}"
    with api_server.client("admin") as http:
        before = http.post("/v1/schedules", json=schedule(name)).json()
        tasks = http.get("/v1/tasks", params={"subject": "orders.report"}).json()["items"]
    with api_server.client(token) as http:
        denied = [
            http.post("/v1/schedules", json=schedule(f"{name}-new")),
            http.post(f"/v1/schedules/{name}/pause"),
            http.post(f"/v1/schedules/{name}/resume"),
            http.post(f"/v1/schedules/{name}/trigger"),
            http.delete(f"/v1/schedules/{name}"),
        ]
        reads = [http.get("/v1/schedules"), http.get(f"/v1/schedules/{name}")]
    for response in denied:
        assert_problem(response, 403, "permission-denied")
    for response in reads:
        if token == "reader":
            assert response.status_code == 200, response.text
        else:
            assert_problem(response, 403, "permission-denied")
    with api_server.client("admin") as http:
        assert http.get(f"/v1/schedules/{name}").json() == before
        after = http.get("/v1/tasks", params={"subject": "orders.report"}).json()["items"]
    assert after == tasks
    assert f"{name}-new" not in names(api_server)


# -- workflows -------------------------------------------------------------------------


def test_register_list_and_get_definitions(api_server):
    with api_server.client("admin") as http:
        first = http.post("/v1/workflows", json=definition("rest.defs"))
        same = http.post("/v1/workflows", json=definition("rest.defs"))
        other = http.post("/v1/workflows", json=definition("rest.defs", subject="orders.other"))
        newer = http.post("/v1/workflows", json=definition("rest.defs", 2, "orders.other"))
    assert (first.status_code, same.status_code, newer.status_code) == (201, 200, 201)
    assert first.json() == {"name": "rest.defs", "version": 1, "created": True}
    assert not same.json()["created"]
    assert_problem(other, 409, "already-exists")
    with api_server.client("reader") as http:
        latest = http.get("/v1/workflows/rest.defs").json()
        old = http.get("/v1/workflows/rest.defs", params={"version": 1}).json()
        listed = http.get("/v1/workflows").json()["items"]
        assert_problem(http.get("/v1/workflows/rest.nope"), 404, "not-found")
        assert_problem(http.get("/v1/workflows/rest.defs", params={"version": 3}), 404, "not-found")
    assert (latest["version"], latest["steps"][1]["subject"]) == (2, "orders.other")
    assert old["steps"][1] == {
        **definition("rest.defs")["steps"][1],
        "kind": "task",
        "when": None,
        "max_attempts": None,
        "timeout": None,
        "signal": None,
        "duration": None,
    }
    assert [(d["name"], d["version"]) for d in listed if d["name"] == "rest.defs"] == [
        ("rest.defs", 1),
        ("rest.defs", 2),
    ]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["steps"][0].update(after=["ship"]),  # a cycle
        lambda d: d["steps"][1].update(after=["nowhere"]),  # an unknown parent
        lambda d: d["steps"][1].update(subject="bad subject"),
        lambda d: d["steps"][1].update(kind="dance"),
        lambda d: d["steps"][1].update(colour="red"),
        lambda d: d["steps"].append(d["steps"][0]),  # a duplicate step
        lambda d: d.update(version=0),
        lambda d: d.update(steps=[]),
    ],
)
def test_a_bad_definition_is_a_400_and_stores_nothing(api_server, change):
    body = definition("rest.bad")
    change(body)
    with api_server.client("admin") as http:
        assert_problem(http.post("/v1/workflows", json=body), 400, "invalid-input")
        assert_problem(http.get("/v1/workflows/rest.bad"), 404, "not-found")


def test_a_run_starts_is_signalled_read_listed_and_cancelled(api_server):
    register(api_server, "rest.run")
    with api_server.client("publisher") as http:
        started = http.post("/v1/workflows/rest.run/runs", json={"input": {"order": 7}})
        assert started.status_code == 201, started.text
        run = started.json()
        assert (run["state"], run["version"], run["input"]) == ("RUNNING", 1, {"order": 7})
        assert list(run["steps"]) == ["wait", "ship"]
        assert run["steps"]["wait"]["state"] == "ACTIVE"
        assert run["steps"]["wait"]["deadline"] > time.time() + 3000
        assert run["steps"]["ship"]["state"] == "PENDING"
        signalled = http.post(
            f"/v1/runs/{run['id']}/signals", json={"name": "go", "payload": {"ok": True}}
        ).json()
        assert_problem(
            http.post(f"/v1/runs/{run['id']}/signals", json={"name": "go"}), 409, "state-conflict"
        )
        assert_problem(
            http.post(f"/v1/runs/{run['id']}/signals", json={"name": "stop"}), 400, "invalid-input"
        )
    wait, ship = signalled["steps"]["wait"], signalled["steps"]["ship"]
    assert (wait["state"], wait["result"]) == ("SUCCEEDED", {"ok": True})
    assert wait["started_at"] <= wait["finished_at"]
    assert (ship["state"], ship["attempts"]) == ("ACTIVE", 0)
    assert signalled["signals"] == {"go": {"ok": True}}
    with api_server.client("reader") as http:
        task = http.get(f"/v1/tasks/{ship['task_id']}").json()
        got = http.get(f"/v1/runs/{run['id']}").json()
        running = http.get("/v1/runs", params={"workflow": "rest.run", "state": "RUNNING"})
        assert_problem(http.get("/v1/runs/no-such-run"), 404, "not-found")
        assert_problem(http.get("/v1/runs", params={"state": "DANCING"}), 400, "invalid-input")
    assert (task["subject"], task["workflow_run"], task["step"]) == (
        "orders.ship",
        run["id"],
        "ship",
    )
    assert task["payload"] == {"input": {"order": 7}, "parents": {"wait": {"ok": True}}}
    assert got["steps"] == signalled["steps"]
    assert [r["id"] for r in running.json()["items"]] == [run["id"]]
    with api_server.client("publisher") as http:
        cancelled = http.delete(f"/v1/runs/{run['id']}").json()
        again = http.delete(f"/v1/runs/{run['id']}")
        late = http.post(f"/v1/runs/{run['id']}/signals", json={"name": "go"})
    assert cancelled["state"] == "CANCELLED"
    assert cancelled["steps"]["ship"]["state"] == "CANCELLED"
    assert again.json()["state"] == "CANCELLED"
    assert_problem(late, 409, "state-conflict")
    with api_server.client("reader") as http:
        assert http.get(f"/v1/tasks/{ship['task_id']}").json()["state"] == "CANCELLED"


def test_start_options_and_its_errors(api_server):
    register(api_server, "rest.start")
    with api_server.client("admin") as http:
        first = http.post(
            "/v1/workflows/rest.start/runs", json={"run_id": "rest-run-1", "version": 1}
        )
        assert (first.status_code, first.json()["id"]) == (201, "rest-run-1")
        assert_problem(
            http.post("/v1/workflows/rest.start/runs", json={"run_id": "rest-run-1"}),
            409,
            "already-exists",
        )
        assert_problem(
            http.post("/v1/workflows/rest.start/runs", json={"version": 9}), 404, "not-found"
        )
        assert_problem(http.post("/v1/workflows/rest.nope/runs"), 404, "not-found")
        assert_problem(
            http.post("/v1/workflows/rest.start/runs", json={"inputs": 1}), 400, "invalid-input"
        )
        big = http.post("/v1/workflows/rest.start/runs", json={"input": "x" * 1_100_000})
        assert_problem(big, 413, "payload-too-large")
        assert http.post("/v1/workflows/rest.start/runs").status_code == 201  # no body
    assert len(runs_of(api_server, "rest.start")) == 2
    with api_server.client("reader") as http:
        first = http.get("/v1/runs", params={"workflow": "rest.start", "limit": 1}).json()
        rest = http.get(
            "/v1/runs", params={"workflow": "rest.start", "cursor": first["next_cursor"]}
        ).json()
        assert_problem(http.get("/v1/runs", params={"limit": 1001}), 400, "invalid-input")
    assert first["next_cursor"]
    assert rest["next_cursor"] is None
    paged = [r["id"] for r in first["items"] + rest["items"]]
    assert sorted(paged) == sorted(r["id"] for r in runs_of(api_server, "rest.start"))


def test_workflow_scopes_and_denials_change_nothing(api_server):
    register(api_server, "rest.scoped")
    register(api_server, "rest.billing", subject="billing.charge")
    with api_server.client("admin") as http:
        run = http.post("/v1/workflows/rest.scoped/runs").json()
    for token in ("publisher", "reader", "consumer", "outsider"):
        with api_server.client(token) as http:
            response = http.post("/v1/workflows", json=definition(f"rest.by-{token}"))
            assert_problem(response, 403, "permission-denied")
            assert_problem(
                http.get(f"/v1/workflows/rest.by-{token}"),
                404 if token == "reader" else 403,
                "not-found" if token == "reader" else "permission-denied",
            )
    with api_server.client("publisher") as http:  # may publish orders.*, not billing.*
        assert_problem(http.post("/v1/workflows/rest.billing/runs"), 403, "permission-denied")
        for path in (
            "/v1/workflows",
            "/v1/workflows/rest.scoped",
            "/v1/runs",
            f"/v1/runs/{run['id']}",
        ):
            assert_problem(http.get(path), 403, "permission-denied")  # no read scope
    for token in ("reader", "consumer", "outsider"):
        with api_server.client(token) as http:
            responses = [
                http.post("/v1/workflows/rest.scoped/runs"),
                http.post(f"/v1/runs/{run['id']}/signals", json={"name": "go"}),
                http.delete(f"/v1/runs/{run['id']}"),
            ]
        for response in responses:
            assert_problem(response, 403, "permission-denied")
    assert runs_of(api_server, "rest.billing") == []
    [after] = runs_of(api_server, "rest.scoped")
    assert (after["state"], after["signals"], after["revision"]) == ("RUNNING", {}, run["revision"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/schedules"),
        ("GET", "/v1/schedules"),
        ("GET", "/v1/schedules/x"),
        ("POST", "/v1/schedules/x/pause"),
        ("POST", "/v1/schedules/x/resume"),
        ("POST", "/v1/schedules/x/trigger"),
        ("DELETE", "/v1/schedules/x"),
        ("POST", "/v1/workflows"),
        ("GET", "/v1/workflows"),
        ("GET", "/v1/workflows/x"),
        ("POST", "/v1/workflows/x/runs"),
        ("GET", "/v1/runs"),
        ("GET", "/v1/runs/x"),
        ("POST", "/v1/runs/x/signals"),
        ("DELETE", "/v1/runs/x"),
    ],
)
def test_every_new_route_refuses_a_missing_token(api_server, method, path):
    with httpx.Client(base_url=api_server.url, timeout=10) as http:
        response = http.request(method, path, json=schedule("x"))
    assert_problem(response, 401, "unauthenticated")
