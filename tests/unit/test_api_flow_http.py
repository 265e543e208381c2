"""Flow control over REST (ADR 0038, 0039): limits (a key rule's weight among them) and
pauses set, listed and removed, by scope; bad rules refused changing nothing; the publish
options concurrency_key, rate_key, group_key and dedup carried both ways, and a unique key
held by an active task answered 409."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook, new_token
from atp.adapters.http import create_app
from atp.core.clock import ManualClock
from atp.core.model import State
from atp.core.platform import Platform
from atp.core.ports import FlowLedger, Wait
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter

NOW = 1_800_000_000.0
RESERVE = 30.0  # how long a woken waiter holds its slot before its admit
MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")
TOKENS = {"reader": ["read"], "publisher": ["publish:orders.*"], "admin": ["admin"]}
PROBLEM = "urn:atp:problem:"


@dataclass
class Api:
    platform: Platform
    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    clock: ManualClock

    async def call(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.headers[token], **kwargs)

    async def status(self) -> dict[str, Any]:
        response = await self.call("reader", "GET", "/v1/limits")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def settings_for(backend: str, tmp_path: Path) -> Settings:
    if backend == "sqlite":
        return MEMORY.replace(store=f"sqlite:///{tmp_path}/atp.db")
    return MEMORY


@pytest.fixture(params=["memory", "sqlite"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    clock = ManualClock(start=NOW)
    platform = Platform.build(settings_for(request.param, tmp_path), clock=clock, local=True)
    if not isinstance(platform.store, FlowLedger):
        await platform.close()
        pytest.skip(f"the {request.param} store keeps no FlowLedger yet")
    made = {name: new_token(name, scopes) for name, scopes in TOKENS.items()}
    guard = Guard(
        TokenBook(token for _, token in made.values()),
        MemoryLimiter(clock),
        rate=1000,
        burst=1000,
    )
    app = create_app(platform, guard, ServerSettings())
    headers = {name: {"Authorization": f"Bearer {text}"} for name, (text, _) in made.items()}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        yield Api(platform, http, headers, clock)
    await platform.close()


# -- limits --------------------------------------------------------------------------------


async def test_a_key_rule_weighs_its_groups_alone_or_beside_a_budget(api):
    alone = {"target": "tenant:*", "key": True, "weight": 3}
    beside = {"target": "tenant:big", "key": True, "concurrency": 4, "weight": 1000}
    first = await api.call("admin", "PUT", "/v1/limits", json=alone)
    second = await api.call("admin", "PUT", "/v1/limits", json=beside)
    assert first.status_code == 200, first.text
    assert {k: v for k, v in first.json().items() if v is not None} == {
        "name": "key:tenant:*",
        "target": "tenant:*",
        "key": True,
        "weight": 3,
        "updated_at": NOW,
    }
    assert (second.json()["concurrency"], second.json()["weight"]) == (4, 1000)
    listed = {item["name"]: item["weight"] for item in (await api.status())["limits"]}
    assert listed == {"key:tenant:*": 3, "key:tenant:big": 1000}
    rules = await api.platform.store.rules()
    assert {limit.name: limit.weight for limit in rules.limits} == listed


async def test_limits_are_set_listed_replaced_and_removed(api):
    subject = {"target": "payments.*", "concurrency": 5, "rate": "10/s", "burst": 20}
    key = {
        "target": "customer:*",
        "key": True,
        "concurrency": 2,
        "window": {"count": 100, "per": 60},
    }
    first = await api.call("admin", "PUT", "/v1/limits", json=subject)
    stored = await api.call("admin", "PUT", "/v1/limits", json=key)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "name": "subject:payments.*",
        "target": "payments.*",
        "key": False,
        "concurrency": 5,
        "rate": {"count": 10, "per": 1.0},
        "burst": 20,
        "window": None,
        "weight": None,
        "updated_at": NOW,
    }
    assert stored.json()["window"] == {"count": 100, "per": 60.0}
    status = await api.status()
    assert [item["name"] for item in status["limits"]] == ["key:customer:*", "subject:payments.*"]
    assert (status["pauses"], status["waiting"]) == ([], {})
    version = status["version"]
    assert version > 0

    await api.clock.advance(5)
    replaced = await api.call(
        "admin",
        "PUT",
        "/v1/limits",
        json={"target": "payments.*", "window": {"count": 5, "per": 30}},
    )
    assert replaced.json()["updated_at"] == NOW + 5
    status = await api.status()
    [payments] = [item for item in status["limits"] if not item["key"]]
    assert (payments["concurrency"], payments["window"]) == (None, {"count": 5, "per": 30.0})
    assert status["version"] > version

    gone = await api.call("admin", "DELETE", "/v1/limits", params={"target": "payments.*"})
    again = await api.call("admin", "DELETE", "/v1/limits", params={"target": "payments.*"})
    not_a_subject = await api.call("admin", "DELETE", "/v1/limits", params={"target": "customer:*"})
    as_key = await api.call(
        "admin", "DELETE", "/v1/limits", params={"target": "customer:*", "key": "true"}
    )
    assert gone.status_code == 204
    assert (again.status_code, again.json()["type"]) == (404, PROBLEM + "not-found")
    assert (not_a_subject.status_code, not_a_subject.json()["type"]) == (
        400,
        PROBLEM + "invalid-input",
    )  # ':' is no subject token: a key pattern needs key=true
    assert as_key.status_code == 204
    assert (await api.status())["limits"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"target": "orders.*"},  # no concurrency, rate or window
        {"target": "orders.*", "concurrency": 1, "burst": 3},  # a burst needs a rate
        {"target": "orders.*", "rate": "ten/s"},
        {"target": "orders.*", "rate": "0/s"},
        {"target": "orders.*", "rate": {"count": 1, "per": 0}},
        {"target": "orders.*", "window": {"count": 5, "per": 3 * 86400}},  # over a day
        {"target": "orders.*", "window": "5/30s"},  # a text is a count per one unit
        {"target": "orders.*", "concurrency": 0},
        {"target": "orders.*", "concurrency": True},
        {"target": "orders.*", "concurrency": "2"},
        {"target": "orders.*", "concurrency": 1, "speed": "fast"},
        {"target": "orders..close", "concurrency": 1},
        {"target": "customer 42", "key": True, "concurrency": 1},
        {"target": "cust*omer", "key": True, "concurrency": 1},
        {"target": "orders.*", "key": "yes", "concurrency": 1},
        {"concurrency": 1},
        {"target": "orders.*", "weight": 2},  # a weight is for key rules
        {"target": "orders.*", "key": False, "concurrency": 1, "weight": 2},
        {"target": "tenant:*", "key": True, "weight": 0},
        {"target": "tenant:*", "key": True, "weight": 1001},
        {"target": "tenant:*", "key": True, "weight": 1.5},
        {"target": "tenant:*", "key": True, "weight": "3"},
        {"target": "tenant:*", "key": True, "weight": None},  # no budget left
    ],
)
async def test_a_bad_rule_is_400_and_changes_nothing(api, body):
    response = await api.call("admin", "PUT", "/v1/limits", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == PROBLEM + "invalid-input"
    status = await api.status()
    assert (status["limits"], status["version"]) == ([], 0)


@pytest.mark.parametrize("token", ["reader", "publisher"])
async def test_changes_need_the_admin_scope(api, token):
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("PUT", "/v1/limits", {"json": {"target": "orders.*", "concurrency": 1}}),
        ("DELETE", "/v1/limits", {"params": {"target": "orders.*"}}),
        ("POST", "/v1/pauses", {"json": {"pattern": "orders.*"}}),
        ("DELETE", "/v1/pauses", {"params": {"pattern": "orders.*"}}),
    ]
    for method, path, kwargs in calls:
        response = await api.call(token, method, path, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["type"] == PROBLEM + "permission-denied"
    anonymous = await api.http.get("/v1/limits")
    assert anonymous.status_code == 401
    status = await api.status()
    assert (status["limits"], status["pauses"], status["version"]) == ([], [], 0)


async def test_reading_the_limits_needs_the_read_scope(api):
    response = await api.call("publisher", "GET", "/v1/limits")
    assert response.status_code == 403


# -- pauses --------------------------------------------------------------------------------


async def test_pause_and_resume(api):
    paused = await api.call("admin", "POST", "/v1/pauses", json={"pattern": "orders.*"})
    again = await api.call("admin", "POST", "/v1/pauses", json={"pattern": "orders.*"})
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"pattern": "orders.*", "changed": True}
    assert again.json() == {"pattern": "orders.*", "changed": False}
    assert (await api.status())["pauses"] == ["orders.*"]

    resumed = await api.call("admin", "DELETE", "/v1/pauses", params={"pattern": "orders.*"})
    twice = await api.call("admin", "DELETE", "/v1/pauses", params={"pattern": "orders.*"})
    assert resumed.json() == {"woken": 0}
    assert (twice.status_code, twice.json()["type"]) == (404, PROBLEM + "not-found")
    assert (await api.status())["pauses"] == []


async def test_a_resume_wakes_the_tasks_its_pause_held(api):
    published = await api.call(
        "admin", "POST", "/v1/tasks", json={"subject": "orders.close", "delay": 3600}
    )
    task_id = published.json()["id"]
    await api.call("admin", "POST", "/v1/pauses", json={"pattern": "orders.>"})
    ledger = api.platform.store
    await ledger.park(
        [Wait("p:orders.close", task_id)], now=NOW, reserve=RESERVE
    )  # as a worker would
    assert (await api.status())["waiting"] == {"p:orders.close": 1}

    await api.clock.advance(10)
    resumed = await api.call("admin", "DELETE", "/v1/pauses", params={"pattern": "orders.>"})
    assert resumed.json() == {"woken": 1}
    record = (await api.call("reader", "GET", f"/v1/tasks/{task_id}")).json()
    assert record["run_at"] == NOW + 10
    assert (await api.status())["waiting"] == {}


@pytest.mark.parametrize("pattern", ["orders..close", "orders.>.x", "", "a b"])
async def test_a_bad_pattern_is_400(api, pattern):
    paused = await api.call("admin", "POST", "/v1/pauses", json={"pattern": pattern})
    resumed = await api.call("admin", "DELETE", "/v1/pauses", params={"pattern": pattern})
    assert paused.status_code == 400, paused.text
    assert resumed.status_code == 400, resumed.text
    assert (await api.status())["pauses"] == []


# -- publish options -----------------------------------------------------------------------


async def publish(api: Api, **body: Any) -> httpx.Response:
    return await api.call(
        "publisher", "POST", "/v1/tasks", json={"subject": "orders.close", **body}
    )


async def test_keys_and_a_throttle_reach_the_task_and_come_back(api):
    options = {
        "concurrency_key": "customer:42",
        "rate_key": "tenant:a",
        "group_key": "tenant:b",
        "idempotency_key": "k",
        "dedup": {"mode": "throttle", "period": 60},
    }
    first = await publish(api, **options)
    assert first.status_code == 201, first.text
    assert first.json()["replaced"] is None
    record = (await api.call("reader", "GET", f"/v1/tasks/{first.json()['id']}")).json()
    assert (record["concurrency_key"], record["rate_key"]) == ("customer:42", "tenant:a")
    assert record["group_key"] == "tenant:b"
    (stored,) = await api.platform.store.get([first.json()["id"]])
    assert stored is not None
    assert stored.task.group_key == "tenant:b"
    assert record["dedup"] == {"mode": "throttle", "period": 60.0}

    await api.clock.advance(30)
    dropped = await publish(api, **options)
    assert dropped.status_code == 200
    assert (dropped.json()["id"], dropped.json()["created"]) == (first.json()["id"], False)


async def test_a_debounce_replaces_the_pending_task(api):
    dedup = {"mode": "debounce", "period": 30}
    first = await publish(api, idempotency_key="k", dedup=dedup)
    await api.clock.advance(10)
    second = await publish(api, idempotency_key="k", dedup=dedup)
    assert first.json()["run_at"] == NOW + 30
    assert second.status_code == 201
    assert second.json()["replaced"] == first.json()["id"]
    assert second.json()["run_at"] == NOW + 40
    record = (await api.call("reader", "GET", f"/v1/tasks/{first.json()['id']}")).json()
    assert record["state"] == str(State.CANCELLED)


async def test_a_unique_key_held_by_an_active_task_is_409_key_active(api):
    first = await publish(api, idempotency_key="k", dedup={"mode": "unique"})
    refused = await publish(api, idempotency_key="k", dedup={"mode": "unique"})
    assert first.status_code == 201
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"] == PROBLEM + "key-active"
    assert problem["conflicts"] == [{"index": 0, "task_id": first.json()["id"], "fields": []}]
    assert problem["accepted"] == []
    batch = await api.call(
        "publisher",
        "POST",
        "/v1/tasks/batch",
        json={
            "tasks": [
                {"subject": "orders.open"},
                {"subject": "orders.close", "idempotency_key": "k", "dedup": {"mode": "unique"}},
            ]
        },
    )
    assert batch.status_code == 409
    assert batch.json()["conflicts"][0]["index"] == 1
    assert batch.json()["accepted"][1] is None
    assert batch.json()["accepted"][0] is not None


@pytest.mark.parametrize(
    "body",
    [
        {"dedup": {"mode": "unique"}},  # no idempotency key
        {"idempotency_key": "k", "dedup": {"mode": "unique", "period": 5}},
        {"idempotency_key": "k", "dedup": {"mode": "throttle"}},
        {"idempotency_key": "k", "dedup": {"mode": "debounce", "period": 0}},
        {"idempotency_key": "k", "dedup": {"mode": "debounce", "period": 5}, "delay": 3},
        {"idempotency_key": "k", "dedup": {"mode": "sometimes", "period": 5}},
        {"idempotency_key": "k", "dedup": {"mode": "throttle", "period": 5, "x": 1}},
        {"concurrency_key": ""},
        {"concurrency_key": "customer 42"},
        {"rate_key": "tenant:*"},
        {"rate_key": "x" * 201},
        {"group_key": ""},
        {"group_key": "tenant *"},
        {"group_key": "tenant:*"},
        {"group_key": 7},
        {"group_key": "x" * 201},
    ],
)
async def test_bad_publish_options_are_400_and_write_nothing(api, body):
    response = await publish(api, **body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == PROBLEM + "invalid-input"
    assert await api.platform.store.counts() == {}


async def test_a_plain_task_has_no_group(api):
    published = await publish(api)
    record = (await api.call("reader", "GET", f"/v1/tasks/{published.json()['id']}")).json()
    assert record["group_key"] is None


async def test_a_dedup_acts_on_the_bodys_key_not_the_header(api):
    headers = {**api.headers["publisher"], "Idempotency-Key": "k"}
    body = {"subject": "orders.close", "dedup": {"mode": "unique"}}
    refused = await api.http.post("/v1/tasks", json=body, headers=headers)
    assert refused.status_code == 400
    assert "idempotency_key" in refused.json()["detail"]
    assert await api.platform.store.counts() == {}


async def test_the_openapi_document_shows_flow_control():
    platform = Platform.build(MEMORY, clock=ManualClock(start=NOW), local=True)
    guard = Guard(TokenBook([]), MemoryLimiter(platform.clock), rate=1, burst=1, enabled=False)
    document = create_app(platform, guard, ServerSettings(auth=False)).openapi()
    paths = document["paths"]
    assert set(paths["/v1/limits"]) == {"get", "put", "delete"}
    assert set(paths["/v1/pauses"]) == {"post", "delete"}
    assert {"403", "404"} <= set(paths["/v1/limits"]["delete"]["responses"])
    assert "409" in paths["/v1/tasks"]["post"]["responses"]
    schemas = document["components"]["schemas"]
    flow_options = {"concurrency_key", "rate_key", "group_key", "dedup"}
    assert flow_options <= set(schemas["TaskIn"]["properties"])
    assert "replaced" in schemas["PublishedOut"]["properties"]
    assert flow_options <= set(schemas["TaskOut"]["properties"])
    assert "weight" in schemas["LimitIn"]["properties"]
    assert "weight" in schemas["LimitOut"]["properties"]
    await platform.close()
