"""The NATS JetStream suite: the raw JetStream publish rate beside atp's, in the same run.

Uses ``$ATP_BENCH_NATS_URL`` if set, else starts a private ``nats-server -js`` (file
storage) on a free port for the suite. Every scenario gets a stream of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.js.api import StreamConfig

from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from bench.drain import Children, Drain, process_cpu, produce, succeeded
from bench.embedded import BATCH, Run
from bench.measure import median
from chaos.servers import start_nats

__all__ = [
    "APP",
    "end_to_end",
    "end_to_end_children",
    "end_to_end_process",
    "enqueue",
    "raw_publish",
    "server",
    "suite",
    "transport_publish",
]

IN_FLIGHT = 4000
"""Acks nats-py keeps in flight in the raw asynchronous publish."""
SQLITE = "sqlite:///{dir}/bench.db"


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The NATS URL to measure against: ``$ATP_BENCH_NATS_URL`` or a private server."""
    given = os.environ.get("ATP_BENCH_NATS_URL")
    if given:
        yield given
        return
    with (
        tempfile.TemporaryDirectory(prefix="atp-bench-nats-") as folder,
        start_nats(Path(folder)) as nats_server,
    ):
        yield nats_server.url


def _url(base: str, **options: str) -> str:
    name = f"bench_{secrets.token_hex(4)}"
    query = {"stream": name.upper(), "prefix": name, **options}
    return base + "?" + "&".join(f"{k}={v}" for k, v in query.items())


async def raw_publish(url: str, count: int, in_flight: bool) -> float:
    """Messages/s stored by JetStream through nats-py alone, each with a ``Nats-Msg-Id``:
    awaiting each ack (``in_flight`` False) or with up to IN_FLIGHT acks outstanding."""
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=IN_FLIGHT)
    name = f"RAW_{secrets.token_hex(4)}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    data = b'{"id":"x","subject":"bench.noop","payload":{"i":1}}'
    started = time.perf_counter()
    if in_flight:
        futures = [
            await js.publish_async(f"{name}.noop", data, headers={"Nats-Msg-Id": str(n)})
            for n in range(count)
        ]
        await asyncio.gather(*futures)
    else:
        for n in range(count):
            await js.publish(f"{name}.noop", data, headers={"Nats-Msg-Id": str(n)})
    elapsed = time.perf_counter() - started
    await js.delete_stream(name)
    await nc.close()
    return count / elapsed


def settings_for(store: str, transport: str, folder: Path, concurrency: int) -> Settings:
    url = store.replace("{dir}", str(folder))
    coordinator = "memory://" if url.startswith("memory") else ""
    return Settings(
        store=url,
        transport=transport,
        coordinator=coordinator,
        concurrency=concurrency,
        forward_interval=0.005,
    )


async def enqueue(store: str, transport: str, count: int, batch: int = BATCH) -> Run:
    """Tasks/s accepted by ``TaskService.publish`` in calls of ``batch``: store, then NATS."""
    with tempfile.TemporaryDirectory() as folder:
        platform = Platform.build(settings_for(store, transport, Path(folder), 1))
        service = TaskService(platform)
        requests = [PublishRequest("bench.noop", {"i": n}) for n in range(count)]
        await service.publish(requests[:1])  # connect and provision outside the clock
        started = time.perf_counter()
        for first in range(0, count, batch):
            await service.publish(requests[first : first + batch])
        elapsed = time.perf_counter() - started
        await platform.close()
    return Run(count / elapsed)


async def end_to_end(store: str, transport: str, count: int, concurrency: int) -> Run:
    """Tasks/s from the first publish to the last completion of no-op tasks through one
    in-process worker and the scheduler, the tasks carried by NATS."""
    with tempfile.TemporaryDirectory() as folder:
        platform = Platform.build(settings_for(store, transport, Path(folder), concurrency))
        done = asyncio.Event()
        finished = [0]
        app = App("bench")

        @app.task("bench.noop")
        async def noop(i: int) -> None:
            finished[0] += 1
            if finished[0] == count:
                done.set()

        stop = asyncio.Event()
        loops = [
            asyncio.create_task(Worker(platform, app.registry).run(stop)),
            asyncio.create_task(Scheduler(platform).run(stop)),
        ]
        service = TaskService(platform)
        await asyncio.sleep(0.5)  # the worker subscribed, the scheduler leads
        started = time.perf_counter()
        for first in range(0, count, BATCH):
            size = min(BATCH, count - first)
            await service.publish(
                [PublishRequest("bench.noop", {"i": first + n}) for n in range(size)]
            )
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*loops)
        await platform.close()
    return Run(count / elapsed)


APP = App("bench-nats")
"""The no-op handler ``end_to_end_process`` runs in ``atp worker bench.nats:APP``."""


@APP.task("bench.noop")
async def _noop(i: int) -> None:
    """Do nothing: the figure is atp's and NATS's cost per task."""


async def end_to_end_process(transport: str, count: int, concurrency: int) -> Drain:
    """Tasks/s from the first publish to the last completion through one ``atp worker``
    process of its own (SQLite store shared by file), as deployed: the producer here. The
    worker's CPU time is read from ``/proc`` around the run."""
    with tempfile.TemporaryDirectory() as folder:
        settings = settings_for(SQLITE, transport, Path(folder), 1)
        platform = Platform.build(settings)
        service = TaskService(platform)
        await service.publish([PublishRequest("bench.warmup", None)])  # create the file
        env = {
            **os.environ,
            "ATP_STORE": settings.store,
            "ATP_TRANSPORT": transport,
            "ATP_CONCURRENCY": str(concurrency),
            "ATP_LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-m", "atp.adapters.cli", "worker", "bench.nats:APP"]
        worker = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
        try:
            await _wait_for_consumer(transport)
            cpu = process_cpu(worker.pid)
            started = time.perf_counter()
            for first in range(0, count, BATCH):
                size = min(BATCH, count - first)
                await service.publish(
                    [PublishRequest("bench.noop", {"i": first + n}) for n in range(size)]
                )
            while await succeeded(platform) < count:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
            cpu = process_cpu(worker.pid) - cpu
        finally:
            worker.terminate()
            worker.wait(30)
            await platform.close()
    return Drain(count / elapsed, cpu_per_task=cpu / count)


async def end_to_end_children(
    transport: str, count: int, concurrency: int, processes: int, batch: int = BATCH
) -> Drain:
    """Tasks/s from the first publish to the last completion through ``processes`` drain
    processes (``bench/drain.py``) sharing one durable consumer and one SQLite file, the
    tasks published here in calls of ``batch`` (1: one by one, while they drain)."""
    with tempfile.TemporaryDirectory() as folder:
        settings = settings_for(SQLITE, transport, Path(folder), 1)
        platform = Platform.build(settings)
        service = TaskService(platform)
        await service.publish([PublishRequest("bench.warmup", None)])  # create the file
        with Children(settings.store, transport, concurrency, processes) as children:
            await children.ready()
            started = time.time()
            published = await produce(service, count, batch, lambda n: None)
            await children.wait(platform, count)
            run = await children.stop(count, started)
        await platform.close()
    run.publish_rate = count / (published - started)
    return run


async def _wait_for_consumer(transport: str) -> None:
    """Until the worker's durable consumer exists (the worker has started)."""
    server, _, query = transport.partition("?")
    stream = dict(part.split("=", 1) for part in query.split("&"))["stream"]
    nc = await nats.connect(server)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(nats.errors.Error):
                if await nc.jetstream().consumers_info(stream):
                    return
            await asyncio.sleep(0.1)
        raise SystemExit("bench nats: the worker process did not subscribe within 60 s")
    finally:
        await nc.close()


async def transport_publish(url: str, count: int) -> float:
    """Messages/s through ``NatsTransport.publish`` alone, batches of 1000."""
    from atp.core.clock import SystemClock
    from atp.core.ids import new_id
    from atp.core.model import Task
    from atp.core.plugins import make_plugin_manager

    transport = make_plugin_manager().make_transport(url, Settings(), SystemClock())
    now = time.time()
    tasks = [Task(new_id(now), "bench.noop", {"i": n}, run_at=now) for n in range(count)]
    await transport.publish(tasks[:1])
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        await transport.publish(tasks[first : first + BATCH])
    elapsed = time.perf_counter() - started
    await transport.close()
    return count / elapsed


def suite(repeat: int, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Raw JetStream publish (serial and with acks in flight), atp's publish, enqueue and
    end to end over NATS, with the SQLite and the memory store; all in one run."""
    sqlite, memory = SQLITE, "memory://"
    small = max(count // 4, 1000)
    single = max(count // 10, 100)
    with server() as base:

        def children(processes: int, tasks: int, batch: int) -> dict[str, float]:
            run = asyncio.run(end_to_end_children(_url(base), tasks, concurrency, processes, batch))
            rates = {"publish_rate": run.publish_rate} if batch == 1 else {}
            return {**rates, "rate": run.rate, "worker_cpu_us_per_task": run.cpu_per_task * 1e6}

        return {
            "raw jetstream publish, await each ack (msg/s)": median(
                repeat, lambda: {"rate": asyncio.run(raw_publish(base, small, False))}
            ),
            f"raw jetstream publish, {IN_FLIGHT} acks in flight (msg/s)": median(
                repeat, lambda: {"rate": asyncio.run(raw_publish(base, count, True))}
            ),
            "nats transport publish, batches of 1000 (msg/s)": median(
                repeat, lambda: {"rate": asyncio.run(transport_publish(_url(base), count))}
            ),
            "enqueue sqlite+nats, batches of 1000 (tasks/s)": median(
                repeat, lambda: _rate(enqueue(sqlite, _url(base), count))
            ),
            "enqueue sqlite+nats, one by one (tasks/s)": median(
                repeat, lambda: _rate(enqueue(sqlite, _url(base), single, 1))
            ),
            "enqueue memory store+nats, batches of 1000 (tasks/s)": median(
                repeat, lambda: _rate(enqueue(memory, _url(base), count))
            ),
            "end to end sqlite+nats, 1 worker in process (tasks/s)": median(
                repeat, lambda: _rate(end_to_end(sqlite, _url(base), count, concurrency))
            ),
            "end to end sqlite+nats, 1 worker process (tasks/s)": median(
                repeat, lambda: _drained(end_to_end_process(_url(base), count, concurrency))
            ),
            "end to end sqlite+nats, 2 worker processes (tasks/s)": median(
                repeat, lambda: children(2, count, BATCH)
            ),
            "end to end sqlite+nats, one-by-one producer, 1 worker process (tasks/s)": median(
                repeat, lambda: children(1, single, 1)
            ),
            "end to end memory store+nats, 1 worker in process (tasks/s)": median(
                repeat, lambda: _rate(end_to_end(memory, _url(base), count, concurrency))
            ),
        }


def _rate(scenario: Coroutine[Any, Any, Run]) -> dict[str, float]:
    return {"rate": asyncio.run(scenario).rate}


def _drained(scenario: Coroutine[Any, Any, Drain]) -> dict[str, float]:
    run = asyncio.run(scenario)
    return {"rate": run.rate, "worker_cpu_us_per_task": run.cpu_per_task * 1e6}
