"""The fleet over REST (ADR 0040, 0041): ``GET /v1/workers`` lists the registry's workers
with the scheduler's leader and its fencing token, ``GET /v1/breakers`` the circuit
breakers; both need scope read, and a store that keeps no breakers is a config-error
problem. Over the memory backends and SQLite (store and local coordinator in one file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from atp.adapters._auth import Guard, ServerSettings, TokenBook, new_token
from atp.adapters.http import create_app
from atp.adapters.http._fleet import BreakerOut, LeaderOut, WorkerOut
from atp.core.clock import ManualClock
from atp.core.flow.breaker import Breaker, BreakerState, breaker_key
from atp.core.platform import Platform
from atp.core.ports import BreakerLedger, Lease, Member, Registry, Sample
from atp.core.registry import member_to_dict
from atp.core.settings import Settings
from atp.plugins.memory.limiter import MemoryLimiter
from atp.sdk.wire.fleet import breaker_to_dict, leader_to_dict

NOW = 1_800_000_000.0
TTL = 15.0
MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")
TOKENS = {"reader": ["read"], "publisher": ["publish:orders.*"]}
PROBLEM = "urn:atp:problem:"


def member(name: str, **fields: Any) -> Member:
    base: dict[str, Any] = {
        "role": "worker",
        "host": "h1",
        "pid": 100,
        "version": "0.1.0",
        "group": "default",
        "patterns": ("orders.*",),
        "concurrency": 8,
        "running": 2,
        "started_at": NOW - 60,
        "seen_at": NOW,
    }
    return Member(name, **{**base, **fields})


@dataclass
class Api:
    platform: Platform
    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    clock: ManualClock

    async def get(self, token: str | None, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers[token] if token else {})


def settings_for(backend: str, tmp_path: Path) -> Settings:
    if backend == "sqlite":
        url = f"{tmp_path}/atp.db"
        return MEMORY.replace(store=f"sqlite:///{url}", coordinator=f"local:///{url}")
    return MEMORY


@pytest.fixture(params=["memory", "sqlite"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    clock = ManualClock(start=NOW)
    platform = Platform.build(settings_for(request.param, tmp_path), clock=clock, local=True)
    made = {name: new_token(name, scopes) for name, scopes in TOKENS.items()}
    guard = Guard(
        TokenBook(token for _, token in made.values()), MemoryLimiter(clock), rate=1000, burst=1000
    )
    app = create_app(platform, guard, ServerSettings(auth=True))
    headers = {name: {"Authorization": f"Bearer {text}"} for name, (text, _) in made.items()}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://atp") as http:
        yield Api(platform, http, headers, clock)
    await platform.close()


def registry(api: Api) -> Registry:
    coordinator = api.platform.coordinator
    assert isinstance(coordinator, Registry)
    return coordinator


async def test_workers_lists_the_live_workers_and_the_leader(api):
    empty = await api.get("reader", "/v1/workers")
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"workers": [], "leader": None, "registry": True}
    await registry(api).announce([member("w2", host="h2"), member("w1")], ttl=TTL)
    await registry(api).announce([member("s1", role="scheduler")], ttl=TTL)
    lease = await api.platform.coordinator.acquire("scheduler", "sched-a", 10.0)
    assert lease is not None
    body = (await api.get("reader", "/v1/workers")).json()
    assert [w["name"] for w in body["workers"]] == ["w1", "w2"]
    assert body["workers"][0] == {
        "name": "w1",
        "role": "worker",
        "host": "h1",
        "pid": 100,
        "version": "0.1.0",
        "group": "default",
        "patterns": ["orders.*"],
        "concurrency": 8,
        "running": 2,
        "started_at": NOW - 60,
        "seen_at": NOW,
        "expires_at": NOW + TTL,
    }
    assert body["leader"] == {
        "lease": "scheduler",
        "owner": "sched-a",
        "token": lease.token,
        "expires_at": NOW + 10.0,
    }
    await api.clock.advance(TTL)
    assert (await api.get("reader", "/v1/workers")).json()["workers"] == []


async def test_breakers_lists_an_open_breaker(api):
    store = api.platform.store
    assert isinstance(store, BreakerLedger)
    assert (await api.get("reader", "/v1/breakers")).json() == {"breakers": []}
    key = breaker_key("billing", "orders.close")
    policy = Breaker(min_volume=4, open_for=30)
    await store.observe([Sample(key, policy, ok=1, failed=3, by="w1")], now=NOW)
    response = await api.get("reader", "/v1/breakers")
    assert response.status_code == 200, response.text
    [found] = response.json()["breakers"]
    keys = ("key", "group", "subject", "circuit", "open_until", "changed_by")
    assert {k: found[k] for k in keys} == {
        "key": "billing/orders.close",
        "group": "billing",
        "subject": "orders.close",
        "circuit": "open",
        "open_until": NOW + 30,
        "changed_by": "w1",
    }


@pytest.mark.parametrize("path", ["/v1/workers", "/v1/breakers"])
async def test_the_fleet_needs_scope_read(api, path):
    anonymous = await api.get(None, path)
    publisher = await api.get("publisher", path)
    assert anonymous.status_code == 401
    assert publisher.status_code == 403
    assert publisher.json()["type"] == PROBLEM + "permission-denied"


async def test_a_store_without_breakers_is_a_config_error(api):
    api.platform.store = object()
    response = await api.get("reader", "/v1/breakers")
    assert response.status_code == 500
    assert response.json()["type"] == PROBLEM + "config-error"
    assert "keeps no circuit breakers" in response.json()["detail"]


def test_the_response_models_carry_every_field_of_the_core_types():
    state = BreakerState(breaker_key("g", "s"))
    assert set(BreakerOut.model_fields) == set(breaker_to_dict(state))
    assert set(WorkerOut.model_fields) == set(member_to_dict(member("w1")))
    assert set(LeaderOut.model_fields) == set(leader_to_dict(Lease("scheduler", "o", 1, NOW)))


def test_the_openapi_document_has_the_fleet_routes(api):
    document = api.http._transport.app.openapi()
    for path, model in (("/v1/workers", "FleetOut"), ("/v1/breakers", "BreakersOut")):
        ok = document["paths"][path]["get"]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"
        }
    circuit = document["components"]["schemas"]["BreakerOut"]["properties"]["circuit"]
    assert circuit["enum"] == ["closed", "open", "half-open"]
