"""The app of the hostile-handler process tests: handlers that exit, interrupt or cancel
themselves, one that behaves, to show the worker outlived the others, and one that kills
its whole process on every attempt."""

from __future__ import annotations

import asyncio
import os
import sys

from atp.sdk import App, current_task

app = App("hostile-e2e")


@app.task("hostile.exit")
async def exits() -> None:
    sys.exit(3)


@app.task("hostile.exit_sync")
def exits_in_a_thread() -> None:
    sys.exit("bye")


@app.task("hostile.interrupt")
async def interrupts() -> None:
    raise KeyboardInterrupt


@app.task("hostile.interrupt_sync")
def interrupts_in_a_thread() -> None:
    raise KeyboardInterrupt


@app.task("hostile.cancel")
async def cancels_itself() -> None:
    raise asyncio.CancelledError


@app.task("hostile.ok")
async def behaves(pause: float = 0.0) -> int:
    await asyncio.sleep(pause)
    return os.getpid()


@app.task("hostile.die", max_attempts=2, timeout=60)
async def dies() -> None:
    """End the whole process, as a crash would; each run is noted in ``$E2E_RUNS``."""
    with open(os.environ["E2E_RUNS"], "a") as runs:  # noqa: ASYNC230 - the process ends here
        runs.write(f"{current_task().attempt}\n")
    os._exit(1)
