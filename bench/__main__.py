"""``python -m bench``: run each scenario several times and print medians.

Every figure comes with the raw backend's own rate measured in the same run, so the ratio
survives a noisy machine. Nothing here is asserted by a test. Each suite is imported only
when it runs, so one needs only its own extra (``python -m bench redis``: ``atp[redis]``);
``pip install -e .[bench]`` brings what every suite needs but ``peers`` (atp beside
huey, Dramatiq and taskiq), which needs ``.[peers]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import embedded, raw
from bench.measure import median

SQLITE = "sqlite:///{dir}/bench.db"
MEMORY = "memory://"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario (median)")
    parser.add_argument("--count", type=int, default=20_000, help="tasks per run")
    parser.add_argument("--concurrency", type=int, default=256, help="worker concurrency")
    parser.add_argument(
        "--scheduled",
        type=int,
        default=100_000,
        help="tasks delayed a week in the Redis memory scenario",
    )
    parser.add_argument(
        "--store-size",
        type=int,
        default=1_000_000,
        help="tasks seeded into the store in the console scenarios",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    options: dict[str, dict[str, Any]] = {
        "redis": {"scheduled": args.scheduled},
        "console": {"tasks": args.store_size},
    }
    results: dict[str, dict[str, float]] = {}
    for name in args.suites or SUITES:
        suite = SUITES[name]()
        results.update(suite(args.repeat, args.count, args.concurrency, **options.get(name, {})))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(f"{name:44s} " + "  ".join(f"{k}={_figure(v)}" for k, v in figures.items()))


def embedded_suite(repeat: int, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    """The embedded default: SQLite store, in-process transport."""
    small = max(count // 10, 100)
    return {
        "raw sqlite: 4 batched writes per task (rows/s)": median(
            repeat, lambda: {"rate": _sqlite_raw(count)}
        ),
        "raw memory transport: publish+fetch+ack (msg/s)": median(
            repeat, lambda: {"rate": raw.memory_transport_roundtrip(count, embedded.BATCH)}
        ),
        "enqueue sqlite, batches of 1000 (tasks/s)": median(
            repeat, lambda: _run(embedded.enqueue(SQLITE, count, embedded.BATCH))
        ),
        "enqueue sqlite, one by one (tasks/s)": median(
            repeat, lambda: _run(embedded.enqueue(SQLITE, small, 1))
        ),
        "end to end sqlite+memory, 1 worker (tasks/s)": median(
            repeat, lambda: _run(embedded.end_to_end(SQLITE, count, concurrency))
        ),
        "end to end memory store, 1 worker (tasks/s)": median(
            repeat, lambda: _run(embedded.end_to_end(MEMORY, count, concurrency))
        ),
        "end to end sqlite+memory, one-by-one producer, 1 worker (tasks/s)": median(
            repeat, lambda: _producer(embedded.end_to_end(SQLITE, small, concurrency, batch=1))
        ),
        "delay: all due in one second, sqlite (lateness ms)": median(
            repeat, lambda: _lateness(embedded.end_to_end(SQLITE, small, concurrency, 2.0))
        ),
    }


Suite = Callable[..., dict[str, dict[str, float]]]


def _figure(value: float) -> str:
    """One decimal, or two for a ratio below 10 (0.76 must not print as 0.8)."""
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def _lazy(module: str) -> Callable[[], Suite]:
    """The ``suite`` of ``bench.<module>``, imported when it runs: its client libraries too."""
    return lambda: importlib.import_module(f"bench.{module}").suite


SUITES: dict[str, Callable[[], Suite]] = {
    "embedded": lambda: embedded_suite,
    "redis": _lazy("redis"),
    "nats": _lazy("nats"),
    "observability": _lazy("observability"),
    "cron": _lazy("cron"),
    "api": _lazy("api"),
    "workflows": _lazy("workflows"),
    "peers": _lazy("peers"),
    "flow": _lazy("flow"),
    "console": _lazy("console"),
}
"""Each loader returns a suite taking (repeat, count, concurrency), plus the options that
``main`` passes to it by name, and returning figures by scenario name."""


def _sqlite_raw(count: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return raw.sqlite_batched_writes(Path(folder) / "raw.db", count, embedded.BATCH)


def _run(scenario: Coroutine[Any, Any, embedded.Run]) -> dict[str, float]:
    return {"rate": asyncio.run(scenario).rate}


def _producer(scenario: Coroutine[Any, Any, embedded.Run]) -> dict[str, float]:
    result = asyncio.run(scenario)
    return {"publish_rate": result.publish_rate, "rate": result.rate}


def _lateness(scenario: Coroutine[Any, Any, embedded.Run]) -> dict[str, float]:
    result = asyncio.run(scenario)
    return {"p50_ms": result.lateness_p50 * 1000, "p99_ms": result.lateness_p99 * 1000}


if __name__ == "__main__":
    main()
