"""Cron firing lateness: the task's ``created_at`` minus its tick, on the embedded default.

One process runs a Scheduler (the leader, on a SQLite file and its local coordinator) with
N one-second schedules for a few seconds of real time. The physical limit is measured in
the same run: how late ``asyncio`` wakes a task that sleeps until the next whole second.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time

from atp.core.model import TaskRecord
from atp.core.platform import Platform
from atp.core.ports import TaskQuery
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.sdk.client import Client
from bench.measure import median

RUN_SECONDS = 8.0
"""Real seconds each run lets the schedules fire."""


def suite(repeat: int, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Lateness of 1 and 100 one-second schedules, and of a bare sleep to the second."""
    return {
        "raw asyncio: sleep to the next second (overshoot ms)": median(
            repeat, lambda: asyncio.run(_sleep_overshoot(RUN_SECONDS))
        ),
        "cron sqlite, 1 schedule every second (lateness ms)": median(
            repeat, lambda: asyncio.run(_firing_lateness(1, RUN_SECONDS))
        ),
        "cron sqlite, 100 schedules every second (lateness ms)": median(
            repeat, lambda: asyncio.run(_firing_lateness(100, RUN_SECONDS))
        ),
    }


async def _firing_lateness(schedules: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(store=f"sqlite:///{folder}/cron.db", transport="memory://")
        platform = Platform.build(settings, local=True)
        client = Client(platform)
        for n in range(schedules):
            await client.add_schedule(f"bench-{n}", "* * * * * *", "bench.cron")
        stop = asyncio.Event()
        runner = asyncio.create_task(Scheduler(platform).run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await runner
        records = await _all(platform)
        await platform.close()
    return _figures([(r.task.created_at - (r.task.tick or 0.0)) * 1000 for r in records])


async def _all(platform: Platform) -> list[TaskRecord]:
    records: list[TaskRecord] = []
    cursor = None
    while True:
        page = await platform.store.query(TaskQuery(cursor=cursor, limit=1000))
        records.extend(r for r in page.items if r.task.tick is not None)
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


async def _sleep_overshoot(seconds: float) -> dict[str, float]:
    late: list[float] = []
    end = time.time() + seconds
    while time.time() < end:
        target = float(int(time.time()) + 1)
        await asyncio.sleep(target - time.time())
        late.append((time.time() - target) * 1000)
    return _figures(late)


def _figures(late: list[float]) -> dict[str, float]:
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1], "n": len(late)}
