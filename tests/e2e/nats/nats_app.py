"""The app the NATS end-to-end tests run under ``atp worker``.

Every execution appends ``<n> <pid>`` to the ledger file named by ``$ATP_E2E_LEDGER``, so
a test can count how often each task ran across processes and kills.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from atp.core.errors import Retry
from atp.sdk.app import App

app = App("e2e-nats")


@app.task("e2e.work")
async def work(n: int, pause: float = 0.0) -> int:
    """Wait ``pause`` seconds (so a kill finds tasks running), then record the execution."""
    await asyncio.sleep(pause)
    _record(n)
    return n


@app.task("e2e.flaky", retries=3)
def flaky(n: int) -> int:
    """Fail the first attempt of each ``n``, succeed on the next (a retry through NATS).

    Sync, so it runs in the worker's threads like a blocking handler would."""
    marker = Path(os.environ["ATP_E2E_LEDGER"] + f".flaky-{n}")
    if not marker.exists():
        marker.touch()
        raise Retry(delay=0.2, reason="first attempt fails on purpose")
    _record(n)
    return n


def _record(n: int) -> None:
    with open(os.environ["ATP_E2E_LEDGER"], "a") as ledger:
        ledger.write(f"{n} {os.getpid()}\n")
