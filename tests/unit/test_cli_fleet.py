"""``atp workers ls`` and ``atp breakers ls`` (ADR 0040, 0041) against a real SQLite store
and the local coordinator in its file, in a temporary folder."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from atp.adapters.cli import cli
from atp.core.flow.breaker import Breaker, breaker_key
from atp.core.platform import Platform
from atp.core.ports import BreakerLedger, Lease, Member, Registry, Sample
from atp.core.settings import Settings

TTL = 60.0


@pytest.fixture
def runner(store_url: str) -> Iterator[CliRunner]:
    yield CliRunner()
    logging.getLogger().setLevel(logging.WARNING)


def atp(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def ok(runner: CliRunner, *args: str) -> str:
    result = atp(runner, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def member(name: str, now: float, **fields: Any) -> Member:
    base: dict[str, Any] = {
        "role": "worker",
        "host": "host-a",
        "pid": 4242,
        "version": "0.1.0",
        "group": "default",
        "patterns": ("orders.*", "sms.send"),
        "concurrency": 8,
        "running": 3,
        "started_at": now - 100,
        "seen_at": now - 2,
    }
    return Member(name, **{**base, **fields})


def populate(url: str, *, leader: bool = True) -> Lease | None:
    """Two workers in the registry, a scheduler leading, a breaker open."""

    async def run() -> Lease | None:
        async with Platform.build(Settings(store=url)) as platform:
            coordinator, store = platform.coordinator, platform.store
            assert isinstance(coordinator, Registry)
            assert isinstance(store, BreakerLedger)
            now = platform.clock.now()
            await coordinator.announce(
                [member("w-b", now, host="host-b"), member("w-a", now)], ttl=TTL
            )
            sample = Sample(breaker_key("default", "orders.close"), Breaker(min_volume=2), 0, 2)
            await store.observe([sample], now=now)
            return await coordinator.acquire("scheduler", "sched-1", TTL) if leader else None

    return asyncio.run(run())


def test_workers_ls_prints_a_table_and_the_leader(runner, store_url):
    lease = populate(store_url)
    assert lease is not None
    lines = ok(runner, "workers", "ls").splitlines()
    assert lines[0].split() == [
        "NAME",
        "HOST",
        "PID",
        "GROUP",
        "PATTERNS",
        "RUNNING",
        "VERSION",
        "SEEN",
    ]
    assert [line.split()[:7] for line in lines[1:3]] == [
        ["w-a", "host-a", "4242", "default", "orders.*,sms.send", "3/8", "0.1.0"],
        ["w-b", "host-b", "4242", "default", "orders.*,sms.send", "3/8", "0.1.0"],
    ]
    assert lines[1].endswith("s ago")
    assert lines[3].startswith(f"leader: sched-1 (fencing token {lease.token}, lease until 20")


def test_workers_ls_json(runner, store_url):
    lease = populate(store_url)
    assert lease is not None
    body = json.loads(ok(runner, "workers", "ls", "--json"))
    assert [w["name"] for w in body["workers"]] == ["w-a", "w-b"]
    assert body["workers"][0]["patterns"] == ["orders.*", "sms.send"]
    assert body["workers"][0]["expires_at"] > time.time()
    assert body["leader"] == {
        "lease": "scheduler",
        "owner": "sched-1",
        "token": lease.token,
        "expires_at": lease.expires_at,
    }
    assert body["registry"] is True


def test_workers_ls_with_nothing_running(runner):
    assert ok(runner, "workers", "ls").splitlines() == [
        "no workers listed",
        "leader: none (no scheduler holds the lease)",
    ]
    assert json.loads(ok(runner, "workers", "ls", "--json")) == {
        "workers": [],
        "leader": None,
        "registry": True,
    }


def test_breakers_ls(runner, store_url):
    assert ok(runner, "breakers", "ls").strip() == (
        "no breakers have counted lately: every circuit is closed"
    )
    populate(store_url, leader=False)
    lines = ok(runner, "breakers", "ls").splitlines()
    assert lines[0].split() == [
        "GROUP",
        "SUBJECT",
        "CIRCUIT",
        "OK",
        "FAILED",
        "OPEN",
        "UNTIL",
        "PROBE",
    ]
    assert lines[1].split()[:5] == ["default", "orders.close", "open", "0", "0"]
    [found] = json.loads(ok(runner, "breakers", "ls", "--json"))["breakers"]
    assert (found["key"], found["group"], found["circuit"]) == (
        "default/orders.close",
        "default",
        "open",
    )
