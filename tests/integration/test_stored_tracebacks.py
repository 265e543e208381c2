"""Each attempt's traceback is written through and read back by the real stores: SQLite,
Redis with a memory transport (finish.lua) and Redis fused (finish_and_ack); an error
without one (a timeout, or a record from before tracebacks) stores no field and reads
None."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from atp.core.model import FINAL_STATES, TRACEBACK_LIMIT, RetryPolicy, State, TaskRecord
from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from atp.sdk.client import Client
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration

BACKENDS = ["sqlite", "redis", "redis-fused"]


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(
            store=f"sqlite:///{tmp_path / 'atp.db'}", transport="memory://", max_attempts=3
        )
    redis_url: str = request.getfixturevalue("redis_url")
    separator = "&" if "?" in redis_url else "?"
    url = f"{redis_url}{separator}prefix={unique('tb')}"
    transport = url if request.param == "redis-fused" else "memory://"
    return Settings(store=url, transport=transport, max_attempts=3)


def _app() -> App:
    app = App("tracebacks")

    @app.task("net.call", retry=RetryPolicy(base=0.0, jitter=False))
    async def call() -> None:
        try:
            raise ConnectionError("boom")
        except ConnectionError as exc:
            raise RuntimeError("x" * (2 * TRACEBACK_LIMIT)) from exc

    @app.task("slow.call", timeout=0.05, max_attempts=1)
    async def slow() -> None:
        await asyncio.Event().wait()

    return app


async def _finished(client: Client, task_id: str, timeout: float = 30) -> TaskRecord:
    deadline = time.monotonic() + timeout
    while (record := await client.get(task_id)).state not in FINAL_STATES:
        assert time.monotonic() < deadline, f"still {record.state} after {timeout}s"
        await asyncio.sleep(0.05)
    return record


async def _run(settings: Settings) -> tuple[TaskRecord, TaskRecord]:
    async with Platform.build(settings, local=True) as platform:
        stop = asyncio.Event()
        runs = [Worker(platform, _app().registry).run(stop), Scheduler(platform).run(stop)]
        running = [asyncio.create_task(run) for run in runs]  # the scheduler runs retries
        try:
            client = Client(platform)
            failing = await client.publish("net.call")
            slow = await client.publish("slow.call")
            return await _finished(client, failing.id), await _finished(client, slow.id)
        finally:
            stop.set()
            await asyncio.gather(*running)


async def test_every_attempts_traceback_is_stored_and_read_back(settings: Settings) -> None:
    failed, timed_out = await _run(settings)
    assert failed.state is State.DEAD
    assert [e.attempt for e in failed.errors] == [1, 2, 3]
    for error in failed.errors:
        trace = error.traceback or ""
        assert len(trace) <= TRACEBACK_LIMIT
        assert trace.startswith("Traceback (most recent call last):")
        assert "ConnectionError: boom" in trace
        assert trace.rstrip().endswith("x" * 100)
        assert "characters] …" in trace
    [timeout] = timed_out.errors
    assert (timeout.kind, timeout.traceback) == ("timeout", None)


async def test_sqlite_stores_the_traceback_only_where_there_is_one(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    settings = Settings(store=f"sqlite:///{path}", transport="memory://", max_attempts=3)
    failed, timed_out = await _run(settings)
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT id, errors FROM tasks").fetchall())
    assert ["traceback" in e for e in json.loads(rows[failed.id])] == [True] * 3
    assert ["traceback" in e for e in json.loads(rows[timed_out.id])] == [False]
    total = sum(len(e["traceback"]) for e in json.loads(rows[failed.id]))
    assert total <= 3 * TRACEBACK_LIMIT + 3 * 100  # bounded, whatever the handler raised
