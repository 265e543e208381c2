"""``python -m bench``: run each scenario several times and print medians.

Every figure comes with the raw backend's own rate measured in the same run, so the ratio
survives a noisy machine. Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import api as api_bench
from bench import cron as cron_bench
from bench import embedded, observability, raw
from bench import nats as nats_bench
from bench import redis as redis_bench
from bench import workflows as workflows_bench
from bench.measure import median

SQLITE = "sqlite:///{dir}/bench.db"
MEMORY = "memory://"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario (median)")
    parser.add_argument("--count", type=int, default=20_000, help="tasks per run")
    parser.add_argument("--concurrency", type=int, default=256, help="worker concurrency")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    results: dict[str, dict[str, float]] = {}
    for name in args.suites or SUITES:
        results.update(SUITES[name](args.repeat, args.count, args.concurrency))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(f"{name:44s} " + "  ".join(f"{k}={v:,.1f}" for k, v in figures.items()))


def embedded_suite(repeat: int, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    """The embedded default: SQLite store, in-process transport."""
    small = max(count // 10, 100)
    return {
        "raw sqlite: 4 batched writes per task (rows/s)": median(
            repeat, lambda: {"rate": _sqlite_raw(count)}),
        "raw memory transport: publish+fetch+ack (msg/s)": median(
            repeat, lambda: {"rate": raw.memory_transport_roundtrip(count, embedded.BATCH)}),
        "enqueue sqlite, batches of 1000 (tasks/s)": median(
            repeat, lambda: _run(embedded.enqueue(SQLITE, count, embedded.BATCH))),
        "enqueue sqlite, one by one (tasks/s)": median(
            repeat, lambda: _run(embedded.enqueue(SQLITE, small, 1))),
        "end to end sqlite+memory, 1 worker (tasks/s)": median(
            repeat, lambda: _run(embedded.end_to_end(SQLITE, count, concurrency))),
        "end to end memory store, 1 worker (tasks/s)": median(
            repeat, lambda: _run(embedded.end_to_end(MEMORY, count, concurrency))),
        "delay: all due in one second, sqlite (lateness ms)": median(
            repeat, lambda: _lateness(embedded.end_to_end(SQLITE, small, concurrency, 2.0))),
    }  # fmt: skip


Suite = Callable[[int, int, int], dict[str, dict[str, float]]]
SUITES: dict[str, Suite] = {
    "embedded": embedded_suite,
    "redis": redis_bench.suite,
    "nats": nats_bench.suite,
    "observability": observability.suite,
    "cron": cron_bench.suite,
    "api": api_bench.suite,
    "workflows": workflows_bench.suite,
}
"""Each suite takes (repeat, count, concurrency) and returns figures by scenario name."""


def _sqlite_raw(count: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return raw.sqlite_batched_writes(Path(folder) / "raw.db", count, embedded.BATCH)


def _run(scenario: object) -> dict[str, float]:
    result = asyncio.run(scenario)  # type: ignore[arg-type]
    return {"rate": result.rate}


def _lateness(scenario: object) -> dict[str, float]:
    result = asyncio.run(scenario)  # type: ignore[arg-type]
    return {"p50_ms": result.lateness_p50 * 1000, "p99_ms": result.lateness_p99 * 1000}


if __name__ == "__main__":
    main()
