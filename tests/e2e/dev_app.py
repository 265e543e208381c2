"""The app the end-to-end tests run under ``atp dev``.

Every execution appends one line, ``<n> <pid>``, to the ledger file named by
``$ATP_E2E_LEDGER``, so a test can count how often each task ran, across restarts.
A single ``write`` of a short line to a file opened for appending is not torn by SIGKILL.
"""

from __future__ import annotations

import asyncio
import os

from atp.sdk.app import App

app = App("e2e")


@app.task("e2e.work")
async def work(n: int, pause: float = 0.0) -> int:
    """Wait ``pause`` seconds (so a kill finds tasks running), then record the execution."""
    await asyncio.sleep(pause)
    _record(n)
    return n


def _record(n: int) -> None:
    with open(os.environ["ATP_E2E_LEDGER"], "a") as ledger:
        ledger.write(f"{n} {os.getpid()}\n")
