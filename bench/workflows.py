"""Workflow step throughput on the embedded default, beside plain tasks in the same run.

One process runs a Worker on a SQLite file (or the memory store) and the in-process
transport. The physical limit is the same no-op handler run as plain tasks, measured in
the same run: a step costs that plus the run's read, plan and compare-and-set.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from atp.core.model import FINAL_STATES
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from atp.sdk.client import Client
from atp.sdk.workflow import Workflow
from bench.measure import median

SQLITE = "sqlite:///{dir}/bench.db"
MEMORY = "memory://"
FAN_OUT = 200
CHAIN = 50
POLL = 0.02


def suite(repeat: int, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Plain tasks, a fan-out of 200 with a fan-in, and a chain of 50, on SQLite and memory."""
    figures: dict[str, dict[str, float]] = {}
    for label, url in (("sqlite", SQLITE), ("memory", MEMORY)):
        figures[f"plain tasks {label}, {FAN_OUT + 2} no-ops (tasks/s)"] = median(
            repeat, lambda url=url: asyncio.run(_plain(url, FAN_OUT + 2, concurrency))
        )
        figures[f"workflow {label}, fan-out {FAN_OUT} + fan-in (steps/s)"] = median(
            repeat, lambda url=url: asyncio.run(_workflow(url, _fan_out(), concurrency))
        )
        figures[f"workflow {label}, chain of {CHAIN} (steps/s)"] = median(
            repeat, lambda url=url: asyncio.run(_workflow(url, _chain(), concurrency))
        )
    return figures


def _app() -> App:
    app = App("bench-workflows")

    @app.task("bench.step")
    async def step(input: Any, parents: dict[str, Any]) -> None:
        return None

    return app


def _fan_out() -> Workflow:
    wf = Workflow("bench.fan", version=1)
    first = wf.step("bench.step", name="first")
    parts = [wf.step("bench.step", name=f"part-{i}", after=first) for i in range(FAN_OUT)]
    wf.step("bench.step", name="last", after=parts)
    return wf


def _chain() -> Workflow:
    wf = Workflow("bench.chain", version=1)
    previous = None
    for i in range(CHAIN):
        previous = wf.step("bench.step", name=f"link-{i}", after=previous)
    return wf


async def _plain(url: str, count: int, concurrency: int) -> dict[str, float]:
    async def work(client: Client) -> None:
        requests = [Client.request("bench.step", {"input": None, "parents": {}})] * count
        await client.publish_many(requests)
        await _until(lambda: _finished(client))

    return {"rate": count / await _timed(url, concurrency, None, work)}


async def _workflow(url: str, wf: Workflow, concurrency: int) -> dict[str, float]:
    async def work(client: Client) -> None:
        run = await client.start_workflow(wf.name)
        await _until(lambda: _run_finished(client, run.id))

    steps = len(wf.definition.steps)
    return {"rate": steps / await _timed(url, concurrency, wf, work)}


async def _timed(
    url: str, concurrency: int, wf: Workflow | None, work: Callable[[Client], Any]
) -> float:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(store=url.format(dir=folder), transport=MEMORY, concurrency=concurrency)
        platform = Platform.build(settings, local=True)
        client = Client(platform)
        if wf is not None:
            await client.register_workflow(wf)
        stop = asyncio.Event()
        runner = asyncio.create_task(Worker(platform, _app().registry).run(stop))
        started = time.perf_counter()
        await work(client)
        elapsed = time.perf_counter() - started
        stop.set()
        await runner
        await platform.close()
    return elapsed


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` (the bench measures; it has no event to wait on)."""
    while True:
        if await check():
            return
        await asyncio.sleep(POLL)


async def _finished(client: Client) -> bool:
    counts = await client.counts()
    return all(state in FINAL_STATES for _, state in counts)


async def _run_finished(client: Client, run_id: str) -> bool:
    return (await client.get_run(run_id)).finished
