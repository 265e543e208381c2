"""The app the Redis e2e tests run in ``atp worker``: a handler that takes a while and
writes one ledger line per run, so a test can count executions."""

from __future__ import annotations

import asyncio
import os

from atp.sdk.app import App

app = App("redis-e2e")


@app.task("e2e.slow")
async def slow(n: int, pause: float = 0.5) -> int:
    await asyncio.sleep(pause)
    await asyncio.to_thread(_note, n)
    return n


def _note(n: int) -> None:
    with open(os.environ["ATP_E2E_LEDGER"], "a") as ledger:
        ledger.write(f"{n} {os.getpid()}\n")
