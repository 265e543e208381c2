"""``atp worker --processes N`` as real processes: N children share the work, a killed
child is restarted and loses nothing, SIGTERM drains them all, a child that keeps crashing
makes the supervisor give up, and children outlive no SIGKILLed supervisor.

The backend is the session's Redis (this test's own key prefix) as store and transport,
or the session's NATS (a stream of its own) beside a SQLite store. Children are found
through /proc (Linux). Every wait is a bounded poll; none is a fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from atp.core.model import State, TaskRecord
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.sdk.client import Client
from tests.e2e._processes import Proc, children, eventually, running
from tests.e2e.processes_app import CRASH_CODE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

APP = "processes_app:app"


@pytest.fixture
async def client(env: dict[str, str]) -> AsyncIterator[Client]:
    settings = Settings.load(env={k: v for k, v in env.items() if k.startswith("ATP_")})
    async with Platform.build(settings) as platform:
        yield Client(platform)


async def supervised(start: Callable[..., Proc], count: int = 2) -> tuple[Proc, set[int]]:
    """An ``atp worker --processes COUNT`` whose children all printed their banner."""
    supervisor = start("supervisor", "worker", APP, "--processes", str(count))

    async def ready() -> set[int]:
        pids = children(supervisor.pid)
        banners = supervisor.text().count("atp worker (pid")
        return pids if len(pids) == count and banners >= count else set()

    return supervisor, await eventually(ready, 30, f"{count} children start", supervisor)


async def publish(client: Client, count: int, pause: float) -> list[str]:
    published = await client.publish_many(
        Client.request("e2e.pid", {"pause": pause}) for _ in range(count)
    )
    return [p.id for p in published]


async def records(client: Client, ids: list[str]) -> list[TaskRecord]:
    return [await client.get(task_id) for task_id in ids]


async def all_succeeded(client: Client, ids: list[str]) -> bool:
    return all(r.state is State.SUCCEEDED for r in await records(client, ids))


async def test_two_children_start_and_both_run_tasks(
    start: Callable[..., Proc], client: Client
) -> None:
    supervisor, pids = await supervised(start)
    assert len(set(supervisor.names().values())) == 2, "the children share a worker name"
    ids = await publish(client, 20, pause=0.3)
    await eventually(lambda: all_succeeded(client, ids), 60, "all 20 tasks ran", supervisor)
    ran = {r.result for r in await records(client, ids)}
    assert ran == pids, f"tasks ran in {ran}, the children are {pids}"


async def test_a_sigkilled_child_is_restarted_and_no_task_is_lost(
    start: Callable[..., Proc], client: Client
) -> None:
    scheduler = start("scheduler", "scheduler")
    supervisor, pids = await supervised(start)
    ids = await publish(client, 30, pause=0.5)
    victim = min(pids)
    name = supervisor.names()[victim]

    async def victim_holds_tasks() -> bool:
        return any(
            r.state is State.RUNNING and r.lease_owner == name for r in await records(client, ids)
        )

    await eventually(victim_holds_tasks, 30, "the victim runs tasks", supervisor)
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> set[int]:
        now = children(supervisor.pid)
        return now if len(now) == 2 and victim not in now else set()

    after = await eventually(replaced, 30, "a new child replaces the killed one", supervisor)
    assert supervisor.names()[(after - pids).pop()] == name, "the new child took another name"
    await eventually(lambda: all_succeeded(client, ids), 60, "all 30 tasks ran", scheduler)
    assert "was killed by SIGKILL" in supervisor.text()
    supervisor.check_alive()


async def test_sigterm_drains_every_child_and_exits_zero(
    start: Callable[..., Proc], client: Client
) -> None:
    supervisor, pids = await supervised(start)
    ids = await publish(client, 8, pause=1.0)

    async def both_busy() -> list[str]:
        busy = [r for r in await records(client, ids) if r.state is State.RUNNING]
        return [r.id for r in busy] if len({r.lease_owner for r in busy}) == 2 else []

    draining = await eventually(both_busy, 30, "both children run tasks", supervisor)
    supervisor.signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.wait, 30) == 0, supervisor.text()
    assert not any(running(pid) for pid in pids), "a child outlived its supervisor"
    assert await all_succeeded(client, draining), "a running task was not drained"
    assert "draining 2 worker processes" in supervisor.text()


@pytest.mark.parametrize("deployment", ["redis"], indirect=True)
async def test_a_child_that_always_crashes_makes_the_supervisor_give_up(
    start: Callable[..., Proc],
) -> None:
    args = ("worker", APP, "--processes", "2", "--restart-delay", "0.05", "--max-deaths", "2")
    supervisor = start("supervisor", *args, E2E_CRASH="exit")
    assert await asyncio.to_thread(supervisor.wait, 60) == 1, supervisor.text()
    text = supervisor.text()
    assert f"exited with code {CRASH_CODE}" in text
    assert "restarting it in" in text
    assert re.search(r"error: worker process \d died 3 times within \d+ s .*giving up", text)


@pytest.mark.parametrize("deployment", ["redis"], indirect=True)
async def test_an_app_that_does_not_import_is_not_restarted(start: Callable[..., Proc]) -> None:
    supervisor = start("supervisor", "worker", APP, "--processes", "2", E2E_CRASH="raise")
    assert await asyncio.to_thread(supervisor.wait, 60) == 5, supervisor.text()
    text = supervisor.text()
    assert "this app does not import" in text
    assert "bad usage or configuration" in text
    assert "restarting it in" not in text


@pytest.mark.parametrize("deployment", ["redis"], indirect=True)
async def test_children_of_a_sigkilled_supervisor_stop(start: Callable[..., Proc]) -> None:
    supervisor, pids = await supervised(start)
    supervisor.signal(signal.SIGKILL)
    await asyncio.to_thread(supervisor.wait, 10)

    async def all_gone() -> bool:
        return not any(running(pid) for pid in pids)

    await eventually(all_gone, 20, "the orphaned children stop")
