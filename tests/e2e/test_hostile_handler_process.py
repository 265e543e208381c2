"""Real ``atp worker`` processes and hostile handlers.

- A worker outlives handlers that call sys.exit(), raise KeyboardInterrupt (on the loop
  or in a handler thread) or raise CancelledError: each is its task's recorded failure,
  and a real SIGINT still drains the worker, which exits 0.
- A handler that kills its process on every attempt runs ``max_attempts`` times (the
  handler's own limit, which the scheduler's reaper cannot know) and its task ends DEAD.

The backend is the session's Redis (this test's own key prefix), or the session's NATS (a
stream of its own) beside a SQLite store. Every wait is a bounded poll.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from atp.core.model import FINAL_STATES, State, TaskRecord
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.sdk.client import Client
from tests.e2e._processes import SHORT, Proc, eventually

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
APP = "hostile_app:app"
HOSTILE = {
    "hostile.exit": "SystemExit: 3, raised by the handler",
    "hostile.exit_sync": "SystemExit: bye, raised by the handler",
    "hostile.interrupt": "KeyboardInterrupt, raised by the handler",
    "hostile.interrupt_sync": "KeyboardInterrupt, raised by the handler",
    "hostile.cancel": "CancelledError, raised by the handler",
}


@pytest.fixture
def env(deployment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    path = os.pathsep.join(filter(None, [str(HERE), clean.get("PYTHONPATH")]))
    runs = {"E2E_RUNS": str(tmp_path / "runs.txt"), "PYTHONPATH": path}
    return {**clean, **SHORT, **deployment, "ATP_MAX_ATTEMPTS": "1", **runs}


@pytest.fixture
async def client(env: dict[str, str]) -> AsyncIterator[Client]:
    settings = Settings.load(env={k: v for k, v in env.items() if k.startswith("ATP_")})
    async with Platform.build(settings) as platform:
        yield Client(platform)


@pytest.fixture
def start(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def run(name: str, *args: str) -> Proc:
        started.append(Proc(tmp_path / f"{name}.log", env, *args))
        return started[-1]

    yield run
    for proc in started:
        proc.kill()


async def finished(client: Client, ids: list[str]) -> list[TaskRecord]:
    records = [await client.get(task_id) for task_id in ids]
    return records if all(r.state in FINAL_STATES for r in records) else []


@pytest.mark.parametrize("deployment", ["redis"], indirect=True)
async def test_a_worker_process_outlives_hostile_handlers(
    start: Callable[..., Proc], client: Client
) -> None:
    worker = start("worker", "worker", APP)
    published = await client.publish_many(Client.request(subject) for subject in HOSTILE)
    ids = [p.id for p in published]
    records = await eventually(lambda: finished(client, ids), 60, "hostile tasks end", worker)
    assert {r.subject: (r.state, [e.message for e in r.errors]) for r in records} == {
        subject: (State.DEAD, [message]) for subject, message in HOSTILE.items()
    }
    ok = await client.publish("hostile.ok")
    [record] = await eventually(lambda: finished(client, [ok.id]), 30, "a good task", worker)
    assert (record.state, record.result) == (State.SUCCEEDED, worker.pid)

    running = await client.publish("hostile.ok", {"pause": 1.0})

    async def started() -> bool:
        return (await client.get(running.id)).state is State.RUNNING

    await eventually(started, 30, "a task runs", worker)
    worker.signal(signal.SIGINT)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.text()
    assert (await client.get(running.id)).state is State.SUCCEEDED, "it was not drained"


async def test_a_task_that_kills_its_worker_every_time_is_dead_after_max_attempts(
    start: Callable[..., Proc], client: Client, env: dict[str, str]
) -> None:
    scheduler = start("scheduler", "scheduler")
    supervisor = start("supervisor", "worker", APP, "--processes", "2", "--restart-delay", "0.1")
    published = await client.publish("hostile.die")
    [record] = await eventually(
        lambda: finished(client, [published.id]), 90, "the task ends", supervisor, scheduler
    )
    runs = await asyncio.to_thread(Path(env["E2E_RUNS"]).read_text)
    assert (record.state, record.task.attempt, runs.split()) == (State.DEAD, 2, ["1", "2"])
    assert {e.kind for e in record.errors} == {"lease"}
