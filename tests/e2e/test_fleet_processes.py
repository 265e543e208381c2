"""The worker registry with real processes (ADR 0041): three ``atp worker`` processes and
a scheduler on one shared backend appear in ``atp workers ls --json`` with the leader and
its fencing token; a SIGKILLed worker is gone once its ``registry_ttl`` has passed, and a
worker stopped with SIGTERM withdraws as it exits.

The backends are the e2e deployments: everything on Redis (the Redis coordinator), or a
SQLite store with its local coordinator beside NATS. Heartbeat 0.5 s, TTL 2 s. Every wait
is a bounded poll; none is a fixed sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from atp.core.fleet import Fleet, fleet
from atp.core.platform import Platform
from tests.e2e._processes import Proc, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

APP = "processes_app:app"
TTL = 2.0
SLACK = 1.5
"""Seconds beyond the TTL a poll may take to see a killed worker gone (polls, a slow CI)."""


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """The e2e environment with a short registry TTL (heartbeat 0.5 s)."""
    return {**env, "ATP_REGISTRY_TTL": str(TTL)}


def workers_ls(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """What ``atp workers ls --json`` prints, as a separate process would read it."""
    done = subprocess.run(
        [sys.executable, "-m", "atp.adapters.cli", "workers", "ls", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


async def pids(platform: Platform) -> set[int]:
    found: Fleet = await fleet(platform)
    return {member.pid for member in found.workers}


async def test_workers_appear_a_killed_one_expires_and_a_stopped_one_withdraws(
    start: Callable[..., Proc], platform: Platform, env: dict[str, str], tmp_path: Path
) -> None:
    scheduler = start("scheduler", "scheduler")
    procs = [start(f"worker-{n}", "worker", APP) for n in range(3)]
    expected = {proc.pid for proc in procs}

    async def all_listed() -> bool:
        return await pids(platform) == expected

    await eventually(all_listed, 60, "three workers listed", *procs, scheduler)

    async def leading() -> bool:
        return (await fleet(platform)).leader is not None

    await eventually(leading, 30, "a scheduler leads", scheduler)
    listed = workers_ls(env, tmp_path)
    assert {w["pid"] for w in listed["workers"]} == expected
    assert all(w["patterns"] == ["e2e.pid"] and w["role"] == "worker" for w in listed["workers"])
    assert listed["leader"]["lease"] == "scheduler"
    assert listed["leader"]["owner"].split(":")[1] == str(scheduler.pid)
    assert listed["leader"]["token"] >= 1

    victim, stopped, survivor = procs
    victim.kill()
    killed_at = time.monotonic()

    async def victim_gone() -> bool:
        return victim.pid not in await pids(platform)

    await eventually(victim_gone, TTL + SLACK, "the killed worker dropped out", survivor)
    gone_after = time.monotonic() - killed_at
    print(f"a SIGKILLed worker was gone from the registry {gone_after:.2f}s after the kill")

    stopped.signal(signal.SIGTERM)
    assert stopped.wait(30) == 0
    assert await pids(platform) == {survivor.pid}, "the stopped worker is still listed"
    assert {w["pid"] for w in workers_ls(env, tmp_path)["workers"]} == {survivor.pid}
