"""The physical limits: what the raw backends do with no atp code in the way."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from atp.core.clock import SystemClock
from atp.core.ids import new_id
from atp.core.model import Task
from atp.plugins.memory.transport import MemoryTransport


def sqlite_batched_writes(path: Path, count: int, batch: int) -> float:
    """Rows/s for the four writes a task costs in SQLite (insert, ready, running, done),
    each a batched transaction as atp does them, with the same durability (FULL, WAL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, state TEXT, run_at REAL, data TEXT)")
    data = '{"subject":"bench.noop","payload":{"i":1}}'
    started = time.perf_counter()
    for first in range(0, count, batch):
        ids = [f"{n:026d}" for n in range(first, min(first + batch, count))]
        _txn(conn, "INSERT INTO t VALUES (?, 'SCHEDULED', 0, ?)", [(i, data) for i in ids])
        for state in ("READY", "RUNNING", "SUCCEEDED"):
            _txn(conn, f"UPDATE t SET state = '{state}' WHERE id = ?", [(i,) for i in ids])
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def _txn(conn: sqlite3.Connection, sql: str, rows: list[tuple[str, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")


def memory_transport_roundtrip(count: int, batch: int) -> float:
    """Messages/s through the in-process transport: publish, fetch and ack in batches."""
    return asyncio.run(_memory_roundtrip(count, batch))


async def _memory_roundtrip(count: int, batch: int) -> float:
    transport = MemoryTransport(SystemClock())
    consumer = await transport.consume("bench.>", "raw")
    tasks = [
        Task(id=new_id(time.time()), subject="bench.noop", payload={"i": n}) for n in range(count)
    ]
    started = time.perf_counter()
    for first in range(0, count, batch):
        await transport.publish(tasks[first : first + batch])
        got = 0
        while got < min(batch, count - first):
            deliveries = await consumer.fetch(batch, 1.0)
            await consumer.ack(deliveries)
            got += len(deliveries)
    elapsed = time.perf_counter() - started
    await transport.close()
    return count / elapsed
