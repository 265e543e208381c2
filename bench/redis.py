"""Scenarios on Redis: the store, transport and coordinator all on one Redis server.

The drain runs in worker processes of its own (``bench/drain.py``), the shape of ``atp
worker``: the producer (and, for the delay scenario, the scheduler) run in the bench
process, so they compete for the machine's cores as they would in a deployment on one
host. The raw rate is pipelined ``XADD`` + ``XREADGROUP`` + ``XACK`` in batches of 1000 on
the same server, in the same run.

Around the end-to-end run with one worker process, ``INFO commandstats`` and ``INFO cpu``
are read before the first publish and after the last completion (differences, so no
statistics are ever reset): the Redis server's time per task. The memory scenario reads
``INFO memory`` around publishing tasks delayed a week, then deletes their keys.

The server is ``$ATP_BENCH_REDIS_URL``, else a private ``redis-server`` on a free port
(AOF on, ``appendfsync everysec``, as a production deployment would run it). On a given
server, other clients' commands and keys count in the server figures too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from bench.drain import SUBJECT, Children, Drain, produce
from bench.embedded import BATCH, Run
from bench.measure import median
from chaos.servers import start_redis

SCHEDULED = 100_000
"""Tasks the memory scenario publishes delayed a week (``--scheduled``)."""
WEEK = 7 * 86400.0
TOP = 5
"""Commands listed by name in the server-time breakdown; the rest add up to ``other``."""

Figures = dict[str, dict[str, float]]


PRODUCERS = 64
"""Concurrent one-by-one producers in the enqueue scenario that has them."""


def settings_for(url: str, concurrency: int) -> Settings:
    return Settings(
        store=url,
        transport=url,
        concurrency=concurrency,
        forward_interval=0.005,
        forward_batch=BATCH,
        log_level="WARNING",
    )


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


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[Any]:
    """A redis-py client through the plugin's own connection code."""
    from atp.plugins.redis._connection import Link, parse_url

    parsed = parse_url(url)
    assert parsed is not None
    link = Link(parsed)
    try:
        yield link.client
    finally:
        await link.close()


async def raw_streams(url: str, count: int, batch: int = BATCH) -> float:
    """Messages/s of pipelined XADD, then XREADGROUP and XACK, in batches: Redis's limit,
    through the plugin's client (its command packer), with no atp code in the way."""
    async with _client(url) as client:
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
    return count / elapsed


async def raw_evalsha(url: str, count: int, *, lean: bool) -> float:
    """Calls/s of EVALSHA of a script that returns at once, each awaited before the next:
    the floor of any one-by-one publish in asyncio (one round trip plus the client's cost
    per command). ``lean``: through the plugin's ``Link.call``, else redis-py's client."""
    from atp.plugins.redis._connection import Link, parse_url

    parsed = parse_url(url)
    assert parsed is not None
    link = Link(parsed)
    sha = await link.call("SCRIPT", "LOAD", "return 1")
    body = b'{"i":1}' * 20
    call = partial(link.call, "EVALSHA", sha) if lean else partial(link.client.evalsha, sha)
    started = time.perf_counter()
    for _ in range(count):
        await call(1, "bench-raw-key", body)
    elapsed = time.perf_counter() - started
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


async def enqueue_concurrently(url: str, count: int, producers: int) -> Run:
    """Tasks/s accepted from ``producers`` coroutines each publishing one task at a time
    (web requests, each publishing one), sharing one TaskService as an app's Client does."""
    platform = Platform.build(settings_for(fresh(url), 1))
    service = TaskService(platform)
    numbers = iter(range(count))

    async def producer() -> None:
        for n in numbers:
            await service.publish([PublishRequest(SUBJECT, {"i": n})])

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(producers)))
    elapsed = time.perf_counter() - started
    await platform.close()
    return Run(count / elapsed)


class ServerTime:
    """The Redis server's work between ``begin`` and ``end``, from INFO differences.

    ``usec`` sums ``INFO commandstats`` over every command: a command a Lua script calls
    counts in the script's ``evalsha`` time and again under its own name, so the sum is an
    upper bound of the time spent executing commands. ``cpu`` is the main thread's CPU
    time, which adds reading, parsing and answering the clients' requests.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._before: tuple[dict[str, int], float] = ({}, 0.0)
        self.by_command: dict[str, float] = {}
        """Microseconds per command name, from commandstats."""
        self.cpu = 0.0
        """Seconds of the server's main thread."""

    async def begin(self) -> None:
        self._before = await self._read()

    async def end(self) -> None:
        (usec, cpu), (usec0, cpu0) = await self._read(), self._before
        self.cpu = cpu - cpu0
        self.by_command = {
            name: float(n - usec0.get(name, 0))
            for name, n in usec.items()
            if n > usec0.get(name, 0)
        }

    def figures(self, count: int) -> dict[str, float]:
        return {
            "redis_us_per_task": sum(self.by_command.values()) / count,
            "redis_cpu_us_per_task": self.cpu * 1e6 / count,
        }

    async def _read(self) -> tuple[dict[str, int], float]:
        async with _client(self._url) as client:
            stats, cpu = await client.info("commandstats"), await client.info("cpu")
        usec = {name.removeprefix("cmdstat_"): int(stat["usec"]) for name, stat in stats.items()}
        user = cpu.get("used_cpu_user_main_thread", cpu["used_cpu_user"])
        system = cpu.get("used_cpu_sys_main_thread", cpu["used_cpu_sys"])
        return usec, float(user) + float(system)


async def end_to_end(
    url: str,
    count: int,
    concurrency: int,
    delay: float = 0.0,
    *,
    processes: int = 1,
    batch: int = BATCH,
    probe: ServerTime | None = None,
) -> Drain:
    """Tasks/s from the first publish to the last completion in ``processes`` worker
    processes, published in calls of ``batch`` (1: one by one, while they drain); with
    ``delay``, the tasks are due spread over one second and lateness is measured;
    ``probe`` reads the server's work from the first publish to the last completion."""
    url = fresh(url)
    with Children(url, url, concurrency, processes) as children:
        await children.ready()
        platform = Platform.build(settings_for(url, concurrency))
        stop = asyncio.Event()
        scheduler = asyncio.create_task(Scheduler(platform).run(stop))
        await asyncio.sleep(0.2)  # the scheduler wins its lease
        service = TaskService(platform)
        if probe:
            await probe.begin()
        started = time.time()
        published = await produce(service, count, batch, lambda n: _due(started, delay, n, count))
        await children.wait(platform, count)
        if probe:
            await probe.end()
        run = await children.stop(count, started)
        stop.set()
        await scheduler
        await platform.close()
    run.publish_rate = count / (published - started)
    return run


async def memory_per_task(url: str, count: int, batch: int = BATCH) -> float:
    """Bytes of Redis memory per task published delayed a week, in batches, into a prefix
    of its own: ``used_memory`` before and after, without client and AOF buffers. The
    keys are deleted afterwards."""
    url = fresh(url)
    platform = Platform.build(settings_for(url, 1))
    service = TaskService(platform)
    # One task first: the indexes and scripts exist before memory is read.
    await service.publish([PublishRequest(SUBJECT, None, delay=WEEK)])
    async with _client(url) as client:
        before = await _memory(client)
        for first in range(0, count, batch):
            await service.publish(
                [
                    PublishRequest(SUBJECT, {"i": n}, delay=WEEK)
                    for n in range(first, min(first + batch, count))
                ]
            )
        grown = await _memory(client) - before
        await platform.close()
        await _delete(client, url.rsplit("prefix=", 1)[1])
    return grown / count


async def _memory(client: Any) -> int:
    info = await client.info("memory")
    return (
        int(info["used_memory"])
        - int(info.get("mem_clients_normal", 0))
        - int(info.get("mem_aof_buffer", 0))
    )


async def _delete(client: Any, prefix: str) -> None:
    """Delete every key under ``prefix`` (atp's keys all start ``prefix:``)."""
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=BATCH):
        batch.append(key)
        if len(batch) == BATCH:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)


def suite(repeat: int, count: int, concurrency: int, scheduled: int = SCHEDULED) -> Figures:
    """Every Redis scenario, each the median of ``repeat`` runs, beside the raw rate."""
    small = max(count // 10, 100)
    with server() as url:
        probes: list[ServerTime] = []

        def rate(scenario: Coroutine[Any, Any, Run]) -> dict[str, float]:
            return {"rate": asyncio.run(scenario).rate}

        def drained(**options: Any) -> dict[str, float]:
            run = asyncio.run(end_to_end(url, count, concurrency, **options))
            return {"rate": run.rate, "worker_cpu_us_per_task": run.cpu_per_task * 1e6}

        def probed() -> dict[str, float]:
            probes.append(ServerTime(url))
            return {**drained(probe=probes[-1]), **probes[-1].figures(count)}

        def producer_bound() -> dict[str, float]:
            run = asyncio.run(end_to_end(url, small, concurrency, batch=1))
            return {
                "publish_rate": run.publish_rate,
                "rate": run.rate,
                "worker_cpu_us_per_task": run.cpu_per_task * 1e6,
            }

        def late(scenario: Coroutine[Any, Any, Run]) -> dict[str, float]:
            run = asyncio.run(scenario)
            return {"p50_ms": run.lateness_p50 * 1000, "p99_ms": run.lateness_p99 * 1000}

        figures = {
            "raw redis: pipelined XADD+XREADGROUP+XACK (msg/s)": median(
                repeat, lambda: {"rate": asyncio.run(raw_streams(url, count))}
            ),
            "enqueue redis, batches of 1000 (tasks/s)": median(
                repeat, lambda: rate(enqueue(url, count, BATCH))
            ),
            f"enqueue redis, one by one from {PRODUCERS} concurrent producers (tasks/s)": median(
                repeat, lambda: rate(enqueue_concurrently(url, count, PRODUCERS))
            ),
            "enqueue redis, one by one (tasks/s)": median(
                repeat, lambda: rate(enqueue(url, small, 1))
            ),
            "raw redis: EVALSHA one by one, redis-py client / Link.call (calls/s)": median(
                repeat,
                lambda: {
                    "client": asyncio.run(raw_evalsha(url, small, lean=False)),
                    "lean": asyncio.run(raw_evalsha(url, small, lean=True)),
                },
            ),
            "end to end redis, 1 worker process (tasks/s)": median(repeat, probed),
            "redis server time by command, end to end 1 worker process (us/task)": _by_command(
                probes, count
            ),
            "end to end redis, 2 worker processes (tasks/s)": median(
                repeat, lambda: drained(processes=2)
            ),
            "end to end redis, one-by-one producer, 1 worker process (tasks/s)": median(
                repeat, producer_bound
            ),
            "delay: 10k due over one second, redis (lateness ms)": median(
                repeat, lambda: late(end_to_end(url, min(count, 10_000), concurrency, 2.0))
            ),
            f"redis memory per scheduled task, {scheduled:,} delayed a week (bytes)": median(
                repeat, lambda: {"bytes_per_task": asyncio.run(memory_per_task(url, scheduled))}
            ),
        }
        return figures


def _by_command(probes: list[ServerTime], count: int) -> dict[str, float]:
    """The median µs per task of the TOP commands by time, the rest summed as ``other``."""
    names = {name for probe in probes for name in probe.by_command}
    runs = iter(
        [{name: probe.by_command.get(name, 0.0) / count for name in names} for probe in probes]
    )
    medians = median(len(probes), lambda: next(runs))
    top = sorted(medians, key=medians.__getitem__, reverse=True)[:TOP]
    return {
        **{name: medians[name] for name in top},
        "other": sum(v for name, v in medians.items() if name not in top),
    }


def _due(started: float, delay: float, n: int, count: int) -> float | None:
    """With a delay, task ``n`` of ``count`` is due ``n/count`` into the second that starts
    ``delay`` seconds after ``started``: ``count`` tasks due in the same second."""
    return started + delay + n / count if delay else None
