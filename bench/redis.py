"""Scenarios on Redis: the store, transport and coordinator all on one Redis server.

The drain runs in its own process (``python -m bench.redis drain URL COUNT CONCURRENCY``),
a real ``atp worker`` shape: the producer (and, for the delay scenario, the scheduler) run
in the bench process, so the two compete for the machine's cores as they would in a
deployment on one host. The raw rate is pipelined ``XADD`` + ``XREADGROUP`` + ``XACK`` in
batches of 1000 on the same server, in the same run.

The server is ``$ATP_BENCH_REDIS_URL``, else a private ``redis-server`` on a free port
(AOF on, ``appendfsync everysec``, as a production deployment would run it).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atp.core.context import current_task
from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from bench.embedded import BATCH, Run
from bench.measure import median
from chaos.servers import start_redis


@dataclass
class Drain(Run):
    """A drain run, with the worker process's CPU time per task (user + system): a
    figure a busy machine disturbs less than wall-clock rates."""

    cpu_per_task: float = 0.0


SUBJECT = "bench.noop"


def settings_for(url: str, concurrency: int) -> Settings:
    return Settings(store=url, transport=url, concurrency=concurrency, forward_interval=0.005,
                    forward_batch=BATCH, log_level="WARNING")  # fmt: skip


def fresh(url: str) -> str:
    """``url`` with a key prefix of its own, so runs never see each other's keys."""
    return f"{url}{'&' if '?' in url else '?'}prefix=bench_{secrets.token_hex(4)}"


@contextmanager
def server() -> Iterator[str]:
    """The Redis URL to measure against: the given one, or a private server."""
    given = os.environ.get("ATP_BENCH_REDIS_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory() as folder:
        # AOF as in production, fsynced every second as most operators run it.
        args = ("--appendonly", "yes", "--appendfsync", "everysec")
        with start_redis(Path(folder), *args) as redis:
            yield redis.url


async def raw_streams(url: str, count: int, batch: int = BATCH) -> float:
    """Messages/s of pipelined XADD, then XREADGROUP and XACK, in batches: Redis's limit,
    through the plugin's client (its command packer), with no atp code in the way."""
    from atp.plugins.redis._connection import Link, parse_url

    parsed = parse_url(url)
    assert parsed is not None
    link = Link(parsed)
    client = link.client
    stream = f"bench-raw-{secrets.token_hex(4)}"
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    body = b'{"id":"x","subject":"bench.noop","payload":{"i":1}}'
    started = time.perf_counter()
    for first in range(0, count, batch):
        size = min(batch, count - first)
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(size):
                pipe.xadd(stream, {"t": body})
            await pipe.execute()
        reply = await client.xreadgroup("g", "c", {stream: ">"}, count=size)
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]
        await client.xack(stream, "g", *ids)
    elapsed = time.perf_counter() - started
    await client.delete(stream)
    await link.close()
    return count / elapsed


async def enqueue(url: str, count: int, batch: int) -> Run:
    """Tasks/s accepted by ``TaskService.publish`` (store create + XADD) in batches."""
    platform = Platform.build(settings_for(fresh(url), 1))
    service = TaskService(platform)
    requests = [PublishRequest(SUBJECT, {"i": n}) for n in range(count)]
    started = time.perf_counter()
    for first in range(0, count, batch):
        await service.publish(requests[first : first + batch])
    elapsed = time.perf_counter() - started
    await platform.close()
    return Run(count / elapsed)


async def end_to_end(url: str, count: int, concurrency: int, delay: float = 0.0) -> Drain:
    """Tasks/s from the first publish to the last completion in a separate worker process;
    with ``delay``, the tasks are due spread over one second and lateness is measured."""
    url = fresh(url)
    command = [sys.executable, "-m", "bench.redis", "drain", url, str(count), str(concurrency)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    assert child.stdout is not None
    child.stdout.readline()  # "ready": the worker consumes
    platform = Platform.build(settings_for(url, concurrency))
    stop = asyncio.Event()
    scheduler = asyncio.create_task(Scheduler(platform).run(stop))
    await asyncio.sleep(0.2)  # the scheduler wins its lease
    service = TaskService(platform)
    started = time.time()
    for first in range(0, count, BATCH):
        numbers = range(first, min(first + BATCH, count))
        due = [_due(started, delay, n, count) for n in numbers]
        await service.publish([PublishRequest(SUBJECT, {"i": n}, run_at=at)
                               for n, at in zip(numbers, due, strict=True)])  # fmt: skip
    report = json.loads(await asyncio.to_thread(child.stdout.readline))
    child.wait(60)
    stop.set()
    await scheduler
    await platform.close()
    rate = count / (report["finished"] - started)
    return Drain(rate, report["p50"], report["p99"], report["cpu"] / count)


async def drain(url: str, count: int, concurrency: int) -> None:
    """The worker process: run no-op handlers until ``count`` ran, then print the figures."""
    platform = Platform.build(settings_for(url, concurrency))
    lateness: list[float] = []
    done = asyncio.Event()
    app = App("bench")

    @app.task(SUBJECT)
    async def noop(i: int) -> None:
        lateness.append(time.time() - current_task().run_at)
        if len(lateness) == count:
            done.set()

    stop = asyncio.Event()
    worker = asyncio.create_task(Worker(platform, app.registry).run(stop))
    await asyncio.sleep(0.1)
    cpu = _cpu()
    print("ready", flush=True)
    await asyncio.wait_for(done.wait(), timeout=600)
    finished, cpu = time.time(), _cpu() - cpu
    while not worker.done() and not stop.is_set():
        stop.set()
    await worker
    await platform.close()
    quantiles = statistics.quantiles(lateness, n=100) if len(lateness) > 1 else [0.0] * 99
    figures = {"finished": finished, "p50": quantiles[49], "p99": quantiles[98], "cpu": cpu}
    print(json.dumps(figures))


def suite(repeat: int, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Every Redis scenario, each the median of ``repeat`` runs, beside the raw rate."""
    small = max(count // 10, 100)
    with server() as url:

        def rate(scenario: object) -> dict[str, float]:
            return {"rate": asyncio.run(scenario).rate}  # type: ignore[arg-type]

        def drained(scenario: object) -> dict[str, float]:
            run = asyncio.run(scenario)  # type: ignore[arg-type]
            return {"rate": run.rate, "worker_cpu_us_per_task": run.cpu_per_task * 1e6}

        def late(scenario: object) -> dict[str, float]:
            run = asyncio.run(scenario)  # type: ignore[arg-type]
            return {"p50_ms": run.lateness_p50 * 1000, "p99_ms": run.lateness_p99 * 1000}

        return {
            "raw redis: pipelined XADD+XREADGROUP+XACK (msg/s)": median(
                repeat, lambda: {"rate": asyncio.run(raw_streams(url, count))}),
            "enqueue redis, batches of 1000 (tasks/s)": median(
                repeat, lambda: rate(enqueue(url, count, BATCH))),
            "enqueue redis, one by one (tasks/s)": median(
                repeat, lambda: rate(enqueue(url, small, 1))),
            "end to end redis, 1 worker process (tasks/s)": median(
                repeat, lambda: drained(end_to_end(url, count, concurrency))),
            "delay: 10k due over one second, redis (lateness ms)": median(
                repeat, lambda: late(end_to_end(url, min(count, 10_000), concurrency, 2.0))),
        }  # fmt: skip


def _due(started: float, delay: float, n: int, count: int) -> float | None:
    """With a delay, task ``n`` of ``count`` is due ``n/count`` into the second that starts
    ``delay`` seconds after ``started``: ``count`` tasks due in the same second."""
    return started + delay + n / count if delay else None


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__" and sys.argv[1:2] == ["drain"]:
    asyncio.run(drain(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
