"""A leader that falls asleep: it takes the scheduler lease through the Redis coordinator,
makes one fenced write, then waits for a line on stdin (the test SIGSTOPs and SIGCONTs it
meanwhile) and makes the late write a paused leader would make, without looking at its
lease first. It prints what the store answered."""

from __future__ import annotations

import asyncio
import sys
import time

from atp.core.clock import SystemClock
from atp.core.errors import FencedOut
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings


async def main(url: str) -> None:
    settings, clock = Settings(store=url, transport=url), SystemClock()
    manager = make_plugin_manager(settings)
    coordinator = manager.make_coordinator(url, settings, clock)
    store = manager.make_store(url, settings, clock)
    lease = await coordinator.acquire("scheduler", f"late-writer:{__import__('os').getpid()}:x", 2)
    assert lease is not None, "the scheduler lease was taken"
    now = time.time()
    await store.take_due(now=now, limit=1000, ready_until=now + 60, fence=lease.fence)
    print(f"leading {lease.token}", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    now = time.time()
    try:
        taken = await store.take_due(now=now, limit=1000, ready_until=now + 60, fence=lease.fence)
        print(f"written {len(taken)}", flush=True)
    except FencedOut as exc:
        print(f"fenced {exc}", flush=True)
    await store.close()
    await coordinator.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
