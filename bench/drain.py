"""Worker processes for the end-to-end scenarios, and the producer's side of them.

``python -m bench.drain STORE TRANSPORT CONCURRENCY`` is one worker process, the shape of
an ``atp worker``: it runs no-op handlers on ``bench.noop``, prints ``ready`` once it
consumes and, on any line on stdin, prints its figures as one JSON line and exits.

Several children may share one queue, and none of them knows how many tasks it will get,
so the parent learns completion by polling the store's counts (``Children.wait``): one
call per poll, nothing per task on the measured path. Each child stamps its own last
completion, so the poll interval does not blur the rate, and measures its own CPU time
from ``ready`` to the stop line.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from atp.core.context import current_task
from atp.core.model import State
from atp.core.platform import Platform
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from bench.embedded import Run

__all__ = ["SUBJECT", "Children", "Drain", "process_cpu", "produce", "succeeded"]

SUBJECT = "bench.noop"
POLL = 0.02
"""Seconds between two polls of the store's counts."""
STALL = 60.0
"""Seconds without one more task finished before the parent gives up."""


@dataclass
class Drain(Run):
    """A drain run, with the worker processes' CPU time per task (user + system, summed
    over the processes): a figure a busy machine disturbs less than wall-clock rates."""

    cpu_per_task: float = 0.0


async def produce(
    service: TaskService, count: int, batch: int, run_at: Callable[[int], float | None]
) -> float:
    """Publish ``count`` no-op tasks in calls of ``batch`` (1: one per call, as a web
    request would); task ``n`` is due at ``run_at(n)``. Returns the wall time it ended."""
    for first in range(0, count, batch):
        numbers = range(first, min(first + batch, count))
        await service.publish(
            [PublishRequest(SUBJECT, {"i": n}, run_at=run_at(n)) for n in numbers]
        )
    return time.time()


async def succeeded(platform: Platform, subject: str = SUBJECT) -> int:
    """How many tasks of ``subject`` the store holds as SUCCEEDED."""
    counts = await platform.store.counts()
    return counts.get((subject, State.SUCCEEDED), 0)


class Children:
    """``processes`` drain children consuming one queue; killed on leaving the block."""

    def __init__(self, store: str, transport: str, concurrency: int, processes: int) -> None:
        command = [sys.executable, "-m", "bench.drain", store, transport, str(concurrency)]
        self._procs = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(processes)
        ]

    async def ready(self) -> None:
        """Until every child consumes."""
        for proc in self._procs:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError(f"bench drain child exited before ready ({proc.wait()})")

    async def wait(self, platform: Platform, count: int) -> None:
        """Until the store holds ``count`` SUCCEEDED tasks; fail if a child died or nothing
        finished for STALL seconds."""
        seen, since = -1, time.monotonic()
        while (done := await succeeded(platform)) < count:
            if done != seen:
                seen, since = done, time.monotonic()
            elif time.monotonic() - since > STALL:
                raise RuntimeError(f"bench drain: stuck at {done} of {count} tasks")
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"bench drain child exited ({proc.returncode})")
            await asyncio.sleep(POLL)

    async def stop(self, count: int, started: float) -> Drain:
        """Stop every child; the run's figures from the first publish at ``started``."""
        reports = await asyncio.to_thread(self._stop)
        finished = max(report["finished"] for report in reports)
        cpu = sum(report["cpu"] for report in reports)
        lateness = [late for report in reports for late in report["lateness"]]
        quantiles = statistics.quantiles(lateness, n=100) if len(lateness) > 1 else [0.0] * 99
        return Drain(
            count / (finished - started), quantiles[49], quantiles[98], cpu_per_task=cpu / count
        )

    def _stop(self) -> list[dict[str, Any]]:
        for proc in self._procs:
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.flush()
        reports = []
        for proc in self._procs:
            assert proc.stdout is not None
            reports.append(json.loads(proc.stdout.readline()))
            proc.wait(60)
        return reports

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far, from ``/proc`` (Linux),
    for a child that cannot report its own (an ``atp worker``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def child(store: str, transport: str, concurrency: int) -> None:
    """The worker process: drain until told to stop, then print the figures."""
    settings = Settings(
        store=store, transport=transport, concurrency=concurrency, log_level="WARNING"
    )
    platform = Platform.build(settings)
    lateness: list[float] = []
    last = [0.0]
    app = App("bench")

    @app.task(SUBJECT)
    async def noop(i: int) -> None:
        last[0] = now = time.time()
        lateness.append(now - current_task().run_at)

    stop = asyncio.Event()
    worker = asyncio.create_task(Worker(platform, app.registry).run(stop))
    await asyncio.sleep(0.2)  # subscribed: the group exists before the first publish
    cpu = _cpu()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    cpu = _cpu() - cpu
    stop.set()
    await worker
    await platform.close()
    print(json.dumps({"finished": last[0], "cpu": cpu, "lateness": lateness}), flush=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    asyncio.run(child(sys.argv[1], sys.argv[2], int(sys.argv[3])))
