"""Metrics, logs and traces of real processes: ``atp dev`` serving /metrics on its own port,
writing JSON log lines, and a producer in another process whose span the consumer links.

Every wait is bounded and polls; none is a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from atp.core.model import FINAL_STATES, State
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.plugins.otel import OtelPlugin
from atp.sdk import App
from tests.observability_support import free_port, scrape, value

pytestmark = pytest.mark.e2e

T = TypeVar("T")
HERE = Path(__file__).parent
SHORT = "lease = 2\nheartbeat = 0.2\nleader_ttl = 2\nreap_interval = 0.5\ndrain_timeout = 2\n"


async def eventually(check: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {timeout}s (last value {result!r})")
        await asyncio.sleep(0.1)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'atp.db'}"


@pytest.fixture
async def producer(store_url: str, exporter: InMemorySpanExporter) -> AsyncIterator[TaskService]:
    """This process publishes, traced, to the store the ``atp dev`` process serves."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(store=store_url, transport="memory://")
    manager = make_plugin_manager(settings, entry_points=False)
    manager.register(OtelPlugin(provider), "otel-test")
    async with Platform.build(settings, plugins=manager) as platform:
        yield TaskService(platform)


@pytest.fixture
def dev(tmp_path: Path, store_url: str) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``atp --log-format json dev obs_app:app`` with both plugins, metrics on a free port."""
    port = free_port()
    config = tmp_path / "atp.toml"
    config.write_text(f"[atp]\n{SHORT}\n[atp.prometheus]\nport = {port}\ndepth_interval = 0.1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATP_", "OTEL_"))}
    env.update(
        ATP_CONFIG=str(config),
        ATP_STORE=store_url,
        ATP_TRANSPORT="memory://",
        ATP_PLUGINS="atp.plugins.prometheus,atp.plugins.otel",
        OTEL_TRACES_EXPORTER="none",
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
    )
    log = tmp_path / "dev.log"
    command = [
        sys.executable,
        "-m",
        "atp.adapters.cli",
        "--log-format",
        "json",
        "dev",
        "obs_app:app",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


async def test_a_real_process_serves_metrics_and_json_logs_after_a_known_sequence(
    dev: tuple[subprocess.Popen[bytes], int, Path],
    producer: TaskService,
    exporter: InMemorySpanExporter,
) -> None:
    process, port, log = dev
    published = await producer.publish(
        [PublishRequest(s) for s in ("obs.ok", "obs.ok", "obs.flaky", "obs.doomed", "obs.slow")]
        + [PublishRequest("obs.later", delay=3600)]
    )
    ids = [p.id for p in published]

    async def running() -> bool:
        assert process.poll() is None, log.read_text()
        return (await producer.get(ids[4])).state is State.RUNNING

    await eventually(running, 30, "obs.slow runs in atp dev")
    await producer.cancel(ids[4])

    async def finished() -> bool:
        records = [await producer.get(task_id) for task_id in ids[:5]]
        return all(r.state in FINAL_STATES for r in records)

    await eventually(finished, 30, "the sequence finishes")
    expected = {
        ("atp_tasks_started_total", "obs.ok"): 2,
        ("atp_tasks_succeeded_total", "obs.ok"): 2,
        ("atp_tasks_started_total", "obs.flaky"): 2,
        ("atp_tasks_failed_total", "obs.flaky"): 1,
        ("atp_tasks_retried_total", "obs.flaky"): 1,
        ("atp_tasks_succeeded_total", "obs.flaky"): 1,
        ("atp_tasks_dead_total", "obs.doomed"): 1,
        ("atp_tasks_cancelled_total", "obs.slow"): 1,
        ("atp_dead_letters", "obs.doomed"): 1,
    }

    async def scraped() -> dict[tuple[str, str], float] | None:
        samples = await scrape(port)
        found = {key: value(samples, key[0], subject=key[1]) for key in expected}
        later = value(samples, "atp_task_depth", subject="obs.later", state="SCHEDULED")
        return found if found == expected and later == 1 else None

    await eventually(scraped, 15, f"the metrics port shows {expected}")
    samples = await scrape(port)
    assert value(samples, "atp_leader", role="scheduler") == 1
    assert sum(v for (name, _), v in samples.items() if name == "atp_worker_in_flight") == 0
    assert value(samples, "atp_task_queue_wait_seconds_count", subject="obs.ok") == 2

    producers = {s.attributes["messaging.message.id"]: s for s in exporter.get_finished_spans()}
    (line,) = [
        json.loads(raw)
        for raw in log.read_text().splitlines()
        if raw.startswith("{") and "obs handler ran" in raw and ids[0] in raw
    ]
    assert (line["logger"], line["level"], line["subject"], line["attempt"]) == (
        "obs.app",
        "INFO",
        "obs.ok",
        1,
    )
    assert line["trace_id"] == f"{producers[ids[0]].context.trace_id:032x}"


async def test_the_consumer_span_links_to_a_producer_span_of_another_process(
    store_url: str, exporter: InMemorySpanExporter
) -> None:
    produced = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(HERE / "produce.py"), store_url, "obs.link"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    producer = json.loads(produced.stdout)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(store=store_url, transport="memory://")
    manager = make_plugin_manager(settings, entry_points=False)
    manager.register(OtelPlugin(provider), "otel-test")
    app = App("link")

    @app.task("obs.link")
    async def link() -> None:
        return None

    async with Platform.build(settings, plugins=manager, local=True) as platform:
        stop = asyncio.Event()
        jobs = [
            asyncio.create_task(Worker(platform, app.registry).run(stop)),
            asyncio.create_task(Scheduler(platform).run(stop)),
        ]
        service = TaskService(platform)

        async def done() -> bool:
            return (await service.get(producer["task_id"])).state is State.SUCCEEDED

        try:
            await eventually(done, 20, "the task produced elsewhere runs here")
        finally:
            stop.set()
            await asyncio.gather(*jobs)
    (consumer,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert producer["name"] == "create obs.link"
    assert f"{consumer.context.trace_id:032x}" == producer["trace_id"]
    assert consumer.parent is not None
    assert f"{consumer.parent.span_id:016x}" == producer["span_id"]
    assert [f"{link.context.span_id:016x}" for link in consumer.links] == [producer["span_id"]]
    assert consumer.attributes["messaging.message.id"] == producer["task_id"]


@pytest.fixture
def api_server(
    tmp_path: Path, store_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``atp server`` with the prometheus plugin, on a free port, without auth or gRPC."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATP_", "OTEL_"))}
    env.update(
        ATP_STORE=store_url,
        ATP_TRANSPORT="memory://",
        ATP_PLUGINS="atp.plugins.prometheus",
        ATP_PROMETHEUS__DEPTH_INTERVAL="0.1",
    )
    command = [
        sys.executable,
        "-m",
        "atp.adapters.cli",
        "server",
        "--no-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        "0",
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process, port, log
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def test_atp_server_serves_metrics_with_the_store_depth(
    api_server: tuple[subprocess.Popen[bytes], int, Path], producer: TaskService
) -> None:
    """``atp server`` mounts the plugin's /metrics (atp_http_mounts) on its REST port."""
    process, port, log = api_server
    await producer.publish([PublishRequest("obs.later", delay=3600)])

    async def depth() -> float:
        assert process.poll() is None, log.read_text()
        try:
            samples = await scrape(port)
        except OSError:
            return 0.0
        return value(samples, "atp_task_depth", subject="obs.later", state="SCHEDULED")

    assert await eventually(depth, 30, "atp server's /metrics shows the depth") == 1
