"""The console's workers page: the workers the coordinator's registry lists (name, host,
patterns, concurrency, running tasks, last heartbeat), the scheduler's leader, and the
circuit breakers; a coordinator or a store that keeps none of them says so."""

from __future__ import annotations

import html
import re
from typing import Any

from atp.adapters.console._format import when
from atp.core.flow.breaker import Breaker, breaker_key
from atp.core.ports import BreakerLedger, Member, Registry, Sample
from atp.core.scheduler.elector import LEADER_LEASE
from tests.console_support import Console, console

TTL = 15.0


class NoRegistry:
    """The coordinator as one that keeps leases and no registry."""

    def __init__(self, coordinator: Any) -> None:
        self._coordinator = coordinator

    def __getattr__(self, name: str) -> Any:
        if name in ("announce", "withdraw", "members"):
            raise AttributeError(name)
        return getattr(self._coordinator, name)


def member(name: str, now: float, **fields: Any) -> Member:
    base: dict[str, Any] = {
        "role": "worker",
        "host": "host-a",
        "pid": 4242,
        "version": "0.9.1",
        "group": "default",
        "patterns": ("orders.*", "mail.>"),
        "concurrency": 8,
        "running": 3,
        "started_at": now - 600,
        "seen_at": now,
    }
    return Member(name, **{**base, **fields})


def registry(c: Console) -> Registry:
    coordinator = c.platform.coordinator
    assert isinstance(coordinator, Registry)
    return coordinator


def row(page: str, attribute: str, value: str) -> str:
    """The text of the table row whose ``attribute`` is ``value``, tags removed."""
    found = re.search(rf'<tr {attribute}="{re.escape(value)}">(.*?)</tr>', page, re.S)
    assert found, f"no row {attribute}={value}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def field(page: str, worker: str, name: str) -> str:
    found = re.search(rf'<tr data-worker="{worker}">.*?data-field="{name}">(.*?)</td>', page, re.S)
    assert found, f"no {name} for {worker}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


async def test_lists_each_live_worker_with_its_last_heartbeat():
    async with console() as c:
        await c.login("read")
        now = c.clock.now()
        await registry(c).announce(
            [member("w2", now, host="host-b", running=0, concurrency=4), member("w1", now)],
            ttl=TTL,
        )
        await c.clock.advance(5)
        page = (await c.http.get("/console/workers")).text
    assert page.index('data-worker="w1"') < page.index('data-worker="w2"')
    text = row(page, "data-worker", "w1")
    for part in ("w1", "host-a", "pid 4242", "default", "orders.* mail.>", "0.9.1"):
        assert part in text
    assert when(now - 600) in text
    assert field(page, "w1", "running") == "3"
    assert field(page, "w1", "concurrency") == "8"
    assert field(page, "w1", "seen") == f"{when(now)} (5.0 s ago)"
    assert "host-b" in row(page, "data-worker", "w2")
    assert "2 alive, 3 of 12 slots running a task." in page


async def test_a_worker_that_stopped_announcing_is_gone_after_its_ttl():
    async with console() as c:
        await c.login("read")
        await registry(c).announce([member("w1", c.clock.now())], ttl=TTL)
        listed = (await c.http.get("/console/workers")).text
        await c.clock.advance(TTL)
        gone = (await c.http.get("/console/workers")).text
    assert 'data-worker="w1"' in listed
    assert 'data-worker="w1"' not in gone
    assert 'id="no-workers"' in gone


async def test_shows_the_leader_and_its_fencing_token():
    async with console() as c:
        await c.login("read")
        none = (await c.http.get("/console/workers")).text
        lease = await c.platform.coordinator.acquire(LEADER_LEASE, "sched-b", 10)
        assert lease is not None
        page = (await c.http.get("/console/workers")).text
    assert 'id="no-leader"' in none
    assert 'data-leader="sched-b">sched-b<' in page
    assert f'data-token="{lease.token}">{lease.token}<' in page
    assert f'{when(lease.expires_at)}</time> <span class="muted">(in 10.0 s)' in page


async def test_lists_the_breakers_with_their_failures_and_when_one_may_probe():
    async with console() as c:
        await c.login("read")
        store = c.platform.store
        assert isinstance(store, BreakerLedger)
        empty = (await c.http.get("/console/workers")).text
        now = c.clock.now()
        opened, counting = breaker_key("billing", "orders.close"), breaker_key("mail", "mail.send")
        policy = Breaker(min_volume=4, open_for=30)
        await store.observe(
            [
                Sample(opened, policy, ok=1, failed=3, by="w1"),
                Sample(counting, policy, ok=2, failed=1, by="w2"),
            ],
            now=now,
        )
        page = (await c.http.get("/console/workers")).text
    assert 'id="no-breakers"' in empty
    text = row(page, "data-breaker-key", opened)
    assert text.startswith("billing / orders.close open")
    assert f"{when(now + 30)} (in 30.0 s)" in text
    assert "now by w1" in text
    assert row(page, "data-breaker-key", counting) == "mail / mail.send closed 1 of 3 — —"


async def test_a_store_without_breakers_says_so():
    async with console() as c:
        await c.login("read")
        store = c.platform.store
        c.platform.store = object()  # type: ignore[assignment]
        try:
            page = await c.http.get("/console/workers")
        finally:
            c.platform.store = store
    assert page.status_code == 200
    assert 'id="no-breakers-kept"' in page.text


async def test_a_coordinator_without_a_registry_says_so():
    async with console() as c:
        await c.login("read")
        await registry(c).announce([member("w1", c.clock.now())], ttl=TTL)
        coordinator = c.platform.coordinator
        c.platform.coordinator = NoRegistry(coordinator)  # type: ignore[assignment]
        await coordinator.acquire(LEADER_LEASE, "sched-a", 10)
        page = (await c.http.get("/console/workers")).text
        overview = (await c.http.get("/console/")).text
    assert 'id="no-registry"' in page
    assert 'data-worker="w1"' not in page
    assert 'data-leader="sched-a"' in page
    assert 'id="no-registry"' in overview


async def test_the_live_part_answers_alone_to_htmx():
    async with console() as c:
        await c.login("read")
        await registry(c).announce([member("w1", c.clock.now())], ttl=TTL)
        part = await c.http.get("/console/workers", headers={"hx-request": "true"})
    assert part.text.startswith('<div id="workers-live" data-live')
    assert 'data-worker="w1"' in part.text
    assert "<html" not in part.text


async def test_the_page_offers_no_action_and_needs_a_session():
    async with console() as c:
        anonymous = await c.http.get("/console/workers")
        await c.login("admin")
        page = (await c.http.get("/console/workers")).text
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/console/login")
    assert re.findall(r'<form method="post" action="([^"]+)"', page) == ["/console/logout"]
