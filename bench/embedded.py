"""Scenarios on the embedded platform: what ``atp dev`` does, measured in one process."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from atp.core.context import current_task
from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App

BATCH = 1000


@dataclass
class Run:
    """What one scenario run measured."""

    rate: float
    """Tasks per second."""
    lateness_p50: float = 0.0
    lateness_p99: float = 0.0
    publish_rate: float = 0.0
    """Tasks per second the producer published, where the run publishes while it drains."""


def settings_for(store: str, folder: Path, concurrency: int) -> Settings:
    url = store.replace("{dir}", str(folder))
    coordinator = "memory://" if url.startswith("memory") else ""
    return Settings(
        store=url,
        transport="memory://",
        coordinator=coordinator,
        concurrency=concurrency,
        forward_interval=0.005,
    )


async def enqueue(store: str, count: int, batch: int) -> Run:
    """Tasks/s accepted by ``TaskService.publish`` in batches of ``batch`` (1: one by one)."""
    with tempfile.TemporaryDirectory() as folder:
        platform = Platform.build(settings_for(store, Path(folder), 1), local=False)
        service = TaskService(platform)
        requests = [PublishRequest("bench.noop", {"i": n}) for n in range(count)]
        started = time.perf_counter()
        for first in range(0, count, batch):
            await service.publish(requests[first : first + batch])
        elapsed = time.perf_counter() - started
        await platform.close()
    return Run(count / elapsed)


async def end_to_end(
    store: str, count: int, concurrency: int, delay: float = 0.0, batch: int = BATCH
) -> Run:
    """Tasks/s from the first publish to the last completion through one in-process worker
    and the scheduler, published in calls of ``batch`` (1: one by one, while the worker
    drains); with ``delay``, every task is due in the same second, and the lateness (start
    minus run_at) is measured."""
    with tempfile.TemporaryDirectory() as folder:
        platform = Platform.build(settings_for(store, Path(folder), concurrency), local=True)
        lateness: list[float] = []
        done = asyncio.Event()
        app = App("bench")

        @app.task("bench.noop")
        async def noop(i: int) -> None:
            lateness.append(time.time() - current_task().run_at)
            if len(lateness) == count:
                done.set()

        return await _drive(platform, app, count, delay, done, lateness, batch)


async def _drive(
    platform: Platform,
    app: App,
    count: int,
    delay: float,
    done: asyncio.Event,
    lateness: list[float],
    batch: int = BATCH,
) -> Run:
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(Worker(platform, app.registry).run(stop)),
        asyncio.create_task(Scheduler(platform).run(stop)),
    ]
    await asyncio.sleep(0.2)  # the scheduler wins its lease
    service = TaskService(platform)
    started = time.perf_counter()
    run_at = time.time() + delay if delay else None
    for first in range(0, count, batch):
        size = min(batch, count - first)
        await service.publish(
            [PublishRequest("bench.noop", {"i": first + n}, run_at=run_at) for n in range(size)]
        )
    published = time.perf_counter() - started
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*loops)
    await platform.close()
    quantiles = statistics.quantiles(lateness, n=100) if len(lateness) > 1 else [0.0] * 99
    return Run(count / elapsed, quantiles[49], quantiles[98], count / published)
