"""The app the ``atp worker --processes`` tests run: each task returns the pid that ran it.

``$E2E_CRASH`` breaks the import on purpose: ``exit`` ends the process at once with code
70 (a crash a restart does not mend), ``raise`` raises (an app that does not import, which
``atp worker`` reports as a configuration error, exit 5).
"""

from __future__ import annotations

import asyncio
import os

from atp.sdk.app import App

CRASH_CODE = 70

if os.environ.get("E2E_CRASH") == "exit":
    os._exit(CRASH_CODE)
if os.environ.get("E2E_CRASH") == "raise":
    raise RuntimeError("this app does not import")

app = App("processes-e2e")


@app.task("e2e.pid")
async def pid(pause: float = 0.0) -> int:
    """Wait ``pause`` seconds (so a signal finds tasks running), then name the process."""
    await asyncio.sleep(pause)
    return os.getpid()
