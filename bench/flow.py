"""Flow control (ADR 0038): what each feature costs end to end, on Redis and embedded SQLite.

Every end-to-end figure is a ratio to ``none`` (plain tasks) measured in the same run:
the scenarios take turns within each repeat, so a machine growing busier shifts them all
alike. On Redis the drain runs in a worker process of its own (``bench/drain.py``) against
a private server (``bench/redis.py``); on SQLite the worker, the scheduler and the
producer share one process with the in-process transport, as ``atp dev`` runs them.

- ``none``: no rules and no keys, so the worker makes no ledger call at all;
- ``concurrency_key``, one key per task: never binds, so it is the pure cost of an admit
  and a release per claimed batch;
- a subject rate limit far above the rate: the cost of one token bucket every task takes;
- a rules table matching nothing: the cost of the rules being there (gates computed and
  found empty: no ledger call);
- a per-key limit of 1 over a few keys: serial handoff, in tasks/s per key (each task
  waits for the one before it to release its slot and wake it, through the forwarder);
- debounce publishes beside plain keyed publishes (the store's create only);
- fairness (ADR 0039): a backlog published before the worker starts, groups weighted
  1:2:3 with A's backlog 100 times B's and C's, behind a subject concurrency limit (the
  dispatch window): each group's share of the first starts over its weight's share (with
  a worker of the window's concurrency, and of the suite's), and the start rate beside
  the same window without groups and beside no limit at all. These run the worker and
  the scheduler in this process on both backends.

On Redis, around the ``none`` and ``concurrency_key`` drains, ``INFO`` is read before the
first publish and after the last completion: round trips (``total_reads_processed``:
socket reads, a pipeline counting once) and ``evalsha`` calls per task, and commands per
task (``INFO commandstats`` calls, commands a Lua script runs included) less what the idle
loops take (``ServerCalls``).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atp.core.flow.rules import Limit, Rate
from atp.core.flow.service import FlowService
from atp.core.model import Dedup, DedupMode
from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from bench import embedded, raw
from bench.drain import SUBJECT, Children, Drain
from bench.embedded import BATCH
from bench.redis import _client, fresh, raw_streams, server, settings_for

__all__ = ["SCENARIOS", "Scenario", "fairness", "suite"]

Figures = dict[str, dict[str, float]]
SQLITE = "sqlite:///{dir}/bench.db"
KEYS = 4
"""Keys of the binding scenario, each limited to one task at a time."""
DEBOUNCE = 60.0
"""Seconds the publish scenarios put their tasks off (none runs while measured)."""
IDLE = 1.0
"""Seconds the round-trip probe watches the idle loops before a run."""
REPLACED_KEYS = 10
"""Keys the replacing-debounce scenario cycles through: every later publish replaces one."""


@dataclass(frozen=True)
class Scenario:
    """Limits set before the workers start, and the request of task ``n``."""

    name: str
    request: Callable[[int], PublishRequest]
    limits: tuple[Limit, ...] = ()
    per_key: int = 0
    """Binding on this many keys: report tasks/s per key."""
    share: int = 1
    """Runs with ``count // share`` tasks (serial handoff is slow on purpose)."""


def _plain(n: int) -> PublishRequest:
    return PublishRequest(SUBJECT, {"i": n})


def _own_key(n: int) -> PublishRequest:
    return PublishRequest(SUBJECT, {"i": n}, concurrency_key=f"c{n}")


def _few_keys(n: int) -> PublishRequest:
    return PublishRequest(SUBJECT, {"i": n}, concurrency_key=f"k{n % KEYS}")


def _unmatched_rules() -> tuple[Limit, ...]:
    """Forty rules on other subjects and on keys no task carries."""
    subjects = [Limit(f"other{i}.*", concurrency=10, rate=Rate(100, 1.0)) for i in range(20)]
    keys = [Limit(f"tenant{i}:*", key=True, concurrency=2) for i in range(20)]
    return (*subjects, *keys)


SCENARIOS = (
    Scenario("none", _plain),
    Scenario("concurrency_key, one key per task (never binds)", _own_key),
    Scenario(
        "subject rate limit 1,000,000/s (never binds)",
        _plain,
        (Limit("bench.*", rate=Rate(1_000_000, 1.0), burst=1_000_000),),
    ),
    Scenario("40 rules, none matching", _plain, _unmatched_rules()),
    Scenario(
        f"per-key limit 1 over {KEYS} keys (serial handoff)",
        _few_keys,
        (Limit("k*", key=True, concurrency=1),),
        per_key=KEYS,
        share=50,
    ),
)


async def _install(platform: Platform, limits: Sequence[Limit]) -> None:
    flow = FlowService(platform)
    for limit in limits:
        await flow.set_limit(limit)


async def _publish(service: TaskService, requests: Sequence[PublishRequest], batch: int) -> None:
    for first in range(0, len(requests), batch):
        await service.publish(requests[first : first + batch])


# -- Redis ---------------------------------------------------------------------------------


@dataclass
class ServerCalls:
    """Round trips and commands the Redis server took between ``begin`` and ``end``.

    The idle loops (the forwarder's polls, the worker's fetch, the bench's count polls)
    are watched for ``IDLE`` seconds before ``begin``: their commands are taken off
    ``net_commands``; round trips and ``evalsha`` calls include them (a busy process polls
    less often than an idle one, so taking them off would undercount), and the idle round
    trips per second are reported beside them.
    """

    url: str
    before: dict[str, int] = field(default_factory=dict)
    delta: dict[str, int] = field(default_factory=dict)
    idle: dict[str, float] = field(default_factory=dict)
    """Per second, with nothing to do."""
    started: float = 0.0
    elapsed: float = 0.0

    async def begin(self) -> None:
        first = await self._read()
        await asyncio.sleep(IDLE)
        self.before = await self._read()
        self.idle = {name: (n - first.get(name, 0)) / IDLE for name, n in self.before.items()}
        self.started = time.perf_counter()

    async def end(self) -> None:
        after = await self._read()
        self.elapsed = time.perf_counter() - self.started
        self.delta = {name: n - self.before.get(name, 0) for name, n in after.items()}

    def figures(self, count: int) -> dict[str, float]:
        commands = [name for name in self.delta if name.startswith("cmd:")]
        busy = sum(self.delta[name] for name in commands)
        idle = sum(self.idle.get(name, 0.0) for name in commands) * self.elapsed
        return {
            "round_trips": self.delta.get("reads", 0) / count,
            "evalsha": self.delta.get("cmd:evalsha", 0) / count,
            "net_commands": (busy - idle) / count,
            "idle_round_trips_per_s": self.idle.get("reads", 0.0),
        }

    async def _read(self) -> dict[str, int]:
        async with _client(self.url) as client:
            stats, commands = await client.info("stats"), await client.info("commandstats")
        counts = {f"cmd:{n.removeprefix('cmdstat_')}": int(s["calls"]) for n, s in commands.items()}
        return {"reads": int(stats["total_reads_processed"]), **counts}


async def redis_drain(
    url: str, scenario: Scenario, count: int, concurrency: int, probe: ServerCalls | None
) -> Drain:
    """Tasks/s from the first publish to the last completion in one worker process, the
    scenario's limits set before the worker starts."""
    url = fresh(url)
    platform = Platform.build(settings_for(url, concurrency))
    await _install(platform, scenario.limits)
    requests = [scenario.request(n) for n in range(count)]
    with Children(url, url, concurrency, 1) as children:
        await children.ready()
        stop = asyncio.Event()
        scheduler = asyncio.create_task(Scheduler(platform).run(stop))
        await asyncio.sleep(0.2)  # the scheduler wins its lease
        service = TaskService(platform)
        if probe:
            await probe.begin()
        started = time.time()
        await _publish(service, requests, BATCH)
        await children.wait(platform, count)
        if probe:
            await probe.end()
        run = await children.stop(count, started)
        stop.set()
        await scheduler
    await platform.close()
    return run


async def redis_enqueue(url: str, requests: Sequence[PublishRequest], batch: int) -> float:
    """Tasks/s accepted by ``TaskService.publish``, no worker running."""
    platform = Platform.build(settings_for(fresh(url), 1))
    rate = await _timed_publish(platform, requests, batch)
    await platform.close()
    return rate


# -- embedded SQLite -----------------------------------------------------------------------


async def sqlite_drain(scenario: Scenario, count: int, concurrency: int) -> float:
    """Tasks/s from the first publish to the last completion, worker, scheduler and
    producer in this process over SQLite and the in-process transport."""
    with tempfile.TemporaryDirectory() as folder:
        settings = embedded.settings_for(SQLITE, Path(folder), concurrency)
        platform = Platform.build(settings, local=True)
        await _install(platform, scenario.limits)
        done, finished = asyncio.Event(), [0]
        app = App("bench")

        @app.task(SUBJECT)
        async def noop(i: int) -> None:
            finished[0] += 1
            if finished[0] == count:
                done.set()

        stop = asyncio.Event()
        loops = [
            asyncio.create_task(Worker(platform, app.registry).run(stop)),
            asyncio.create_task(Scheduler(platform).run(stop)),
        ]
        await asyncio.sleep(0.2)  # the scheduler wins its lease
        requests = [scenario.request(n) for n in range(count)]
        started = time.perf_counter()
        await _publish(TaskService(platform), requests, BATCH)
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*loops)
        await platform.close()
    return count / elapsed


async def sqlite_enqueue(requests: Sequence[PublishRequest], batch: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        settings = embedded.settings_for(SQLITE, Path(folder), 1)
        platform = Platform.build(settings, local=False)
        rate = await _timed_publish(platform, requests, batch)
        await platform.close()
    return rate


async def _timed_publish(
    platform: Platform, requests: Sequence[PublishRequest], batch: int
) -> float:
    service = TaskService(platform)
    started = time.perf_counter()
    await _publish(service, requests, batch)
    return len(requests) / (time.perf_counter() - started)


def sqlite_raw(count: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return raw.sqlite_batched_writes(Path(folder) / "raw.db", count, BATCH)


# -- the suite -----------------------------------------------------------------------------


def _keyed(n: int) -> PublishRequest:
    return PublishRequest(SUBJECT, {"i": n}, idempotency_key=f"d{n}", delay=DEBOUNCE)


def _debounced(n: int) -> PublishRequest:
    return PublishRequest(
        SUBJECT, {"i": n}, idempotency_key=f"d{n}", dedup=Dedup(DedupMode.DEBOUNCE, DEBOUNCE)
    )


def _replacing(n: int) -> PublishRequest:
    return PublishRequest(
        SUBJECT,
        {"i": n},
        idempotency_key=f"r{n % REPLACED_KEYS}",
        dedup=Dedup(DedupMode.DEBOUNCE, DEBOUNCE),
    )


PUBLISHES: tuple[tuple[str, Callable[[int], PublishRequest], bool], ...] = (
    ("keyed publish, batches of 1000", _keyed, True),
    ("debounce, a key per task, batches of 1000", _debounced, True),
    ("keyed publish, one by one", _keyed, False),
    (f"debounce over {REPLACED_KEYS} keys (each replaces), one by one", _replacing, False),
)
"""Name, request of task ``n``, and whether published in batches (else one by one)."""


def _drains(
    label: str,
    repeat: int,
    count: int,
    once: Callable[[Scenario, int], dict[str, float]],
) -> Figures:
    """Each scenario's medians and its ratio to ``none``, the scenarios taking turns."""
    runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in SCENARIOS}
    for _ in range(repeat):
        for scenario in SCENARIOS:
            runs[scenario.name].append(once(scenario, max(count // scenario.share, KEYS * 10)))
    medians = {name: _medians(found) for name, found in runs.items()}
    base = medians["none"]["rate"]
    figures: Figures = {}
    for scenario in SCENARIOS:
        found = medians[scenario.name]
        if scenario.per_key:
            found = {"per_key": found["rate"] / scenario.per_key, **found}
        else:
            found = {**found, "ratio": found["rate"] / base}
        unit = "tasks/s per key" if scenario.per_key else "tasks/s"
        figures[f"flow {label}: {scenario.name} ({unit})"] = found
    return figures


def _enqueues(
    label: str, repeat: int, count: int, once: Callable[[list[PublishRequest], int], float]
) -> Figures:
    """Publish rates, debounce beside the plain keyed publish of the same batching."""
    small = max(count // 10, 100)
    runs: dict[str, list[float]] = {name: [] for name, _, _ in PUBLISHES}
    for _ in range(repeat):
        for name, request, batched in PUBLISHES:
            requests = [request(n) for n in range(count if batched else small)]
            runs[name].append(once(requests, BATCH if batched else 1))
    rates = {name: statistics.median(found) for name, found in runs.items()}
    figures: Figures = {}
    for name, _, batched in PUBLISHES:
        plain = rates[PUBLISHES[0][0] if batched else PUBLISHES[2][0]]
        figures[f"flow {label}: {name} (tasks/s)"] = {
            "rate": rates[name],
            "ratio": rates[name] / plain,
        }
    return figures


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _run(coroutine: Coroutine[Any, Any, float]) -> float:
    return asyncio.run(coroutine)


def redis_figures(url: str, repeat: int, count: int, concurrency: int) -> Figures:
    calls: dict[str, list[dict[str, float]]] = {}

    def once(scenario: Scenario, tasks: int) -> dict[str, float]:
        probed = scenario is SCENARIOS[0] or scenario is SCENARIOS[1]
        probe = ServerCalls(url) if probed else None
        run = asyncio.run(redis_drain(url, scenario, tasks, concurrency, probe))
        if probe:
            calls.setdefault(scenario.name, []).append(probe.figures(tasks))
        return {"rate": run.rate, "worker_cpu_us_per_task": run.cpu_per_task * 1e6}

    raw_rate = statistics.median(_run(raw_streams(url, count)) for _ in range(repeat))
    figures: Figures = {
        "flow raw redis: pipelined XADD+XREADGROUP+XACK (msg/s)": {"rate": raw_rate}
    }
    figures.update(_drains("redis, 1 worker process", repeat, count, once))
    for name, found in calls.items():
        figures[f"flow redis: server calls per task, {name}"] = _medians(found)
    figures.update(_enqueues("redis", repeat, count, lambda rs, b: _run(redis_enqueue(url, rs, b))))
    return figures


def sqlite_figures(repeat: int, count: int, concurrency: int) -> Figures:
    def once(scenario: Scenario, tasks: int) -> dict[str, float]:
        return {"rate": _run(sqlite_drain(scenario, tasks, concurrency))}

    raw_rate = statistics.median(sqlite_raw(count) for _ in range(repeat))
    figures: Figures = {"flow raw sqlite: 4 batched writes per task (rows/s)": {"rate": raw_rate}}
    figures.update(_drains("sqlite+memory, 1 worker", repeat, count, once))
    figures.update(_enqueues("sqlite", repeat, count, lambda rs, b: _run(sqlite_enqueue(rs, b))))
    return figures


# -- fairness ------------------------------------------------------------------------------

FAIR_WINDOW = 64
"""The subject concurrency limit of the fairness runs."""
FAIR_WEIGHTS = {"a": 1, "b": 2, "c": 3}
FAIR_MEASURED = 15 * FAIR_WINDOW
"""Starts measured per fairness run (at most ``count // 10``), whole windows: the tasks
woken together start in id order, so a window cut in two favours A, published first."""
FAIR_MODES = ("none", "window", "fair")
"""No limit; the window alone (no groups); the window with weighted groups."""


def _fair_backlog(measured: int, mode: str) -> list[PublishRequest]:
    """A's tasks, then B's, then C's: B and C hold a tenth more than their shares of the
    measured starts (so every group waits throughout), A a hundred times as many."""
    total = sum(FAIR_WEIGHTS.values())
    small = math.ceil(1.1 * measured * max(FAIR_WEIGHTS.values()) / total)
    counts = {"a": 100 * small, "b": small, "c": small}
    grouped = mode == "fair"
    return [
        PublishRequest(SUBJECT, {"g": group}, group_key=f"t:{group}" if grouped else None)
        for group, n in counts.items()
        for _ in range(n)
    ]


def _fair_limits(mode: str) -> tuple[Limit, ...]:
    if mode == "none":
        return ()
    window = Limit("bench.*", concurrency=FAIR_WINDOW)
    if mode == "window":
        return (window,)
    weights = (Limit(f"t:{g}", key=True, weight=w) for g, w in FAIR_WEIGHTS.items())
    return (window, *weights)


async def fair_drain(settings: Settings, mode: str, measured: int) -> dict[str, float]:
    """Publish the backlog, then start a worker and the scheduler in this process; the
    starts per group among ``measured`` of them, and starts/s over those. The tasks that
    found room at publish (dispatched at once, never waiting) start first and are left
    out."""
    platform = Platform.build(settings, local=settings.transport.startswith("memory"))
    flow = FlowService(platform)
    await _install(platform, _fair_limits(mode))
    backlog = _fair_backlog(measured, mode)
    await _publish(TaskService(platform), backlog, BATCH)
    skip = len(backlog) - sum((await flow.status()).waiting.values()) if mode != "none" else 0
    groups: list[str] = []
    times: list[float] = []
    done = asyncio.Event()
    app = App("bench")

    @app.task(SUBJECT)
    async def noop(g: str) -> None:
        if len(groups) < skip + measured:
            groups.append(g)
            times.append(time.perf_counter())
        if len(groups) == skip + measured:
            done.set()

    stop = asyncio.Event()
    loops = [
        asyncio.create_task(Worker(platform, app.registry).run(stop)),
        asyncio.create_task(Scheduler(platform).run(stop)),
    ]
    await asyncio.wait_for(done.wait(), timeout=600)
    stop.set()
    await asyncio.gather(*loops)
    await platform.close()
    total = sum(FAIR_WEIGHTS.values())
    found = {"rate": (measured - 1) / (times[-1] - times[skip])}
    if mode == "fair":
        split = groups[skip:]
        for group, weight in FAIR_WEIGHTS.items():
            found[f"{group}_share"] = split.count(group) / measured / (weight / total)
    return found


def fair_figures(
    label: str, make: Callable[[Path, int], Settings], repeat: int, count: int, concurrency: int
) -> Figures:
    """Each mode's medians, the modes taking turns, with a worker of the window's
    concurrency, then the fair mode with one of ``concurrency``; ``make`` gives the
    settings of a fresh backend (a folder of its own is there for a database)."""
    measured = FAIR_WINDOW * max(min(FAIR_MEASURED, count // 10) // FAIR_WINDOW, 2)
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in (*FAIR_MODES, "wide")}
    for _ in range(repeat):
        for mode in (*FAIR_MODES, "wide"):
            width = concurrency if mode == "wide" else FAIR_WINDOW
            with tempfile.TemporaryDirectory() as folder:
                settings = make(Path(folder), width)
                kind = "fair" if mode == "wide" else mode
                runs[mode].append(asyncio.run(fair_drain(settings, kind, measured)))
    medians = {mode: _medians(found) for mode, found in runs.items()}
    none, window = medians["none"]["rate"], medians["window"]["rate"]
    fair, wide = medians["fair"], medians["wide"]
    split = f"groups 1:2:3, A's backlog 100x, first {measured} waiting starts"
    return {
        f"flow {label}: window {FAIR_WINDOW}, {split} (share / weight's share)": {
            k: v for k, v in fair.items() if k.endswith("_share")
        },
        f"flow {label}: the same, worker concurrency {concurrency}": {
            k: v for k, v in wide.items() if k.endswith("_share")
        },
        f"flow {label}: starts/s, no limit": {"rate": none},
        f"flow {label}: starts/s, window {FAIR_WINDOW}": {"rate": window, "ratio": window / none},
        f"flow {label}: starts/s, window {FAIR_WINDOW} + fair groups": {
            "rate": fair["rate"],
            "ratio": fair["rate"] / none,
            "ratio_to_window": fair["rate"] / window,
        },
    }


def fairness(repeat: int, count: int, concurrency: int) -> Figures:
    """The fairness runs on Redis (a fresh key prefix each), then on SQLite."""
    with server() as url:
        figures = fair_figures(
            "fair redis",
            lambda _, width: settings_for(fresh(url), width),
            repeat,
            count,
            concurrency,
        )
    figures.update(
        fair_figures(
            "fair sqlite+memory",
            lambda folder, width: embedded.settings_for(SQLITE, folder, width),
            repeat,
            count,
            concurrency,
        )
    )
    return figures


def suite(repeat: int, count: int, concurrency: int) -> Figures:
    """Every flow-control scenario on Redis, then on embedded SQLite, beside raw rates."""
    with server() as url:
        figures = redis_figures(url, repeat, count, concurrency)
    figures.update(sqlite_figures(repeat, count, concurrency))
    figures.update(fairness(repeat, count, concurrency))
    return figures
