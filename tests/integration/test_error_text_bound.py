"""A handler's 5 MB exception message is stored bounded on SQLite: head and tail around a
marker, in the record and in the database row itself."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from atp.core.model import ERROR_TEXT_LIMIT, FINAL_STATES, TRACEBACK_LIMIT, State, TaskRecord
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from atp.sdk.client import Client

pytestmark = pytest.mark.integration

HUGE = 5 * 1024 * 1024


async def _finished(client: Client, task_id: str, timeout: float) -> TaskRecord:
    deadline = time.monotonic() + timeout
    while (record := await client.get(task_id)).state not in FINAL_STATES:
        assert time.monotonic() < deadline, f"still {record.state} after {timeout}s"
        await asyncio.sleep(0.05)
    return record


async def test_a_5_mb_exception_message_is_stored_bounded(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    settings = Settings(store=f"sqlite:///{path}", transport="memory://", max_attempts=1)
    app = App("loud")

    @app.task("loud.fail")
    async def fail() -> None:
        raise ValueError("<" + "!" * HUGE + ">")

    async with Platform.build(settings, local=True) as platform:
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(platform, app.registry).run(stop))
        try:
            client = Client(platform)
            record = await _finished(client, (await client.publish("loud.fail")).id, 30)
        finally:
            stop.set()
            await worker
    [error] = record.errors
    assert record.state is State.DEAD
    assert len(error.message) <= ERROR_TEXT_LIMIT
    assert error.message.startswith("ValueError: <!!!")
    assert error.message.endswith("!!!>")
    assert " … [cut 5,2" in error.message
    with sqlite3.connect(path) as db:
        [(stored,)] = db.execute("SELECT length(errors) FROM tasks").fetchall()
    assert stored < ERROR_TEXT_LIMIT + TRACEBACK_LIMIT + 200
