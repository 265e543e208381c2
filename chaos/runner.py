"""Run suites on stacks: deploy, publish through the faults, settle, check, report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path

from atp.core.errors import AtpError
from atp.core.model import FINAL_STATES, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import TaskQuery
from atp.core.settings import Settings
from atp.core.workflows.runs import ACTIVE_RUN_STATES, Run
from atp.sdk.client import Client
from chaos.app import TICK, flow
from chaos.deployment import Deployment, Stack
from chaos.faults import Target, inject
from chaos.invariants import CronWindow, Evidence, check_all
from chaos.ledger import Ledger
from chaos.report import RunResult
from chaos.suites import Suite
from chaos.workload import Workload, produce

__all__ = ["run_one"]

log = logging.getLogger("chaos")
CRON_TAIL = 4.0
"""Seconds a leader has, after the faults, to fire the ticks a failover left behind."""
SETTLE = 120.0
"""How long, after the workload and the faults, every task has to reach a final state."""
API_REMOTE = 0.3
"""On an api stack, the share of the work published for the gRPC consumers."""


async def run_one(
    suite: Suite, stack: Stack, seed: int, folder: Path, toxiproxy_url: str | None = None
) -> RunResult:
    """Run one suite on one stack in ``folder``; never raises for a failed deployment."""
    result = RunResult(suite.name, suite.title, stack.name, seed, started=time.time())
    deployment = Deployment(
        stack,
        folder / f"{suite.name}-{stack.name}",
        toxiproxy_url,
        clocks=suite.clocks,
        disk=suite.disk,
        slow_fsync=suite.slow_fsync,
        partitions=suite.partitions,
    )
    try:
        await deployment.start()
        await _run(suite, deployment, random.Random(f"{seed}:{suite.name}:{stack.name}"), result)
    except Exception as exc:  # reported, so the other runs go on
        log.exception("chaos: %s on %s could not run", suite.name, stack.name)
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        await deployment.close()
        result.finished = time.time()
    return result


async def _run(suite: Suite, deployment: Deployment, rng: random.Random, result: RunResult) -> None:
    env = {k: v for k, v in deployment.env().items() if k.startswith("ATP_")}
    async with Platform.build(Settings.load(env=env)) as platform:
        target = Target(deployment, platform.coordinator, rng)
        await _wait_leader(target, deployment)
        exits: list[str] = []
        crashes: list[str] = []
        watchdog = asyncio.create_task(_watch(deployment, exits, crashes))
        try:
            evidence = await _workload(suite, deployment, platform, target, result)
        finally:
            watchdog.cancel()
        evidence = replace(evidence, exits=exits, crashes=crashes)
        result.checks = [*check_all(evidence), *(check(evidence) for check in suite.checks)]


async def _workload(
    suite: Suite, deployment: Deployment, platform: Platform, target: Target, result: RunResult
) -> Evidence:
    """Publish through the faults, let everything settle, gather the evidence."""
    workload = suite.workload
    if deployment.stack.api:  # producers over REST, a share of the work for gRPC consumers
        workload = replace(workload, remote=API_REMOTE)
        async with Client.connect(deployment.rest_url) as client:
            await _wait_api(client)
            return await _publish_and_settle(suite, workload, client, platform, target, result)
    client = Client(platform)
    return await _publish_and_settle(suite, workload, client, platform, target, result)


async def _publish_and_settle(
    suite: Suite,
    workload: Workload,
    client: Client,
    platform: Platform,
    target: Target,
    result: RunResult,
) -> Evidence:
    deployment, ledger = target.deployment, Ledger(target.deployment.ledger)
    await client.register_workflow(flow)
    schedule = f"chaos-{suite.name}"
    await client.add_schedule(schedule, "* * * * * *", TICK, {"key": "tick"}, misfire="all")
    cron_start = time.time()
    loop = asyncio.get_running_loop()
    started = loop.time()
    produced, _ = await asyncio.gather(
        produce(client, workload, ledger, target.rng),
        inject(suite.plan(target.rng, workload), target, started, result.faults.append),
    )
    cron = await _stop_cron(client, schedule, cron_start)
    records = await _settle(platform, list(ledger.read().accepted.values()))
    runs = await _settle_runs(client, ledger.read().runs)
    view = ledger.read()  # again: executions went on while the tasks settled
    result.workload = {**asdict(produced), "publish seconds": round(loop.time() - started, 1)}
    return Evidence(
        view,
        records,
        await _stored(platform),
        target.killed,
        _after_pause(deployment, target),
        cron,
        runs,
        faults=list(result.faults),
    )


async def _stop_cron(client: Client, schedule: str, start: float) -> CronWindow:
    """Let a leader fire (and catch up) CRON_TAIL seconds past the last fault, then stop."""
    await asyncio.sleep(CRON_TAIL)
    end = time.time() - CRON_TAIL
    await client.remove_schedule(schedule)
    return CronWindow(schedule, start + 1.0, end)


async def _wait_api(client: Client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.counts()
            return
        except AtpError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _wait_leader(target: Target, deployment: Deployment, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while await target.coordinator.holder("scheduler") is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no scheduler leader within {timeout:g}s")
        await asyncio.sleep(0.1)


async def _settle(platform: Platform, ids: list[str]) -> dict[str, TaskRecord | None]:
    """Poll until every accepted task is final, or SETTLE runs out; return the records."""
    deadline = time.monotonic() + SETTLE
    while True:
        records = await _records(platform, ids)
        open_ = [r for r in records.values() if r is None or r.state not in FINAL_STATES]
        if not open_ or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.5)


async def _settle_runs(client: Client, ids: list[str]) -> dict[str, Run | None]:
    """Poll until every started run is finished, or SETTLE runs out; return the runs."""
    deadline = time.monotonic() + SETTLE
    while True:
        runs: dict[str, Run | None] = {}
        for run_id in ids:
            try:
                runs[run_id] = await client.get_run(run_id)
            except AtpError:
                runs[run_id] = None
        active = [r for r in runs.values() if r is None or r.state in ACTIVE_RUN_STATES]
        if not active or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.5)


async def _watch(deployment: Deployment, exits: list[str], crashes: list[str]) -> None:
    """Start again, and note in ``exits`` (atp processes) or ``crashes`` (servers),
    whatever exited on its own (not what a fault holds down), for the whole run."""
    while True:
        for process in deployment.processes:
            if process.process is None or process.alive or process.held:
                continue
            note = f"{process.name} (pid {process.pid}) exited with {process.process.returncode}"
            log.warning("chaos: %s, restarting", note)
            exits.append(note)
            await asyncio.to_thread(process.start)
        for name, server in deployment.servers.items():
            if server.running or name in deployment.held:
                continue
            crashes.append(f"{name} (pid {server.pid})")
            log.warning("chaos: server %s exited, restarting", name)
            with contextlib.suppress(Exception):  # tried again on the next round
                await asyncio.to_thread(server.start)
        await asyncio.sleep(0.5)


async def _records(platform: Platform, ids: list[str]) -> dict[str, TaskRecord | None]:
    found: dict[str, TaskRecord | None] = {}
    for chunk in _chunks(ids, 500):
        with contextlib.suppress(Exception):  # a store still recovering: poll again
            found.update(zip(chunk, await platform.store.get(chunk), strict=True))
    return {i: found.get(i) for i in ids}


async def _stored(platform: Platform) -> list[TaskRecord]:
    stored, cursor = [], None
    while True:
        page = await platform.store.query(TaskQuery(subject="chaos.>", cursor=cursor, limit=500))
        stored.extend(page.items)
        if page.next_cursor is None:
            return stored
        cursor = page.next_cursor


def _after_pause(deployment: Deployment, target: Target) -> str | None:
    if not target.paused:
        return None
    texts = []
    for name, offset in target.paused.items():
        process = next(p for p in deployment.processes if p.name == name)
        with process.log.open("rb") as log_file:
            log_file.seek(offset)
            texts.append(log_file.read().decode(errors="replace"))
    return "".join(texts)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
