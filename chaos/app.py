"""The app every chaos deployment runs: handlers that write the ledger.

``chaos.work`` records its start, works for ``pause`` seconds (so a kill finds tasks
running) and records its end. ``chaos.doomed`` always fails: its tasks are the only ones
that may end in the dead-letter queue. ``chaos.tick`` is what a one-second cron schedule
fires. ``chaos.flow`` is a workflow of ``chaos.step`` tasks: one step, a fan-out of four,
a fan-in.

The hostile handlers misbehave on every attempt, each its own way: ``chaos.hostile.raises``
raises, ``.hangs`` outlives its timeout, ``.exits`` calls ``sys.exit()``, ``.interrupts``
raises KeyboardInterrupt, ``.nan`` returns NaN. Each has ``HOSTILE_ATTEMPTS`` attempts; the
worker must survive them and end each such task in a final state without retrying it beyond.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from typing import Any

from atp.core.context import current_task
from atp.core.errors import Fail
from atp.sdk import Workflow
from atp.sdk.app import App
from chaos.ledger import LEDGER_ENV, record

__all__ = [
    "DOOMED",
    "FLOW",
    "HOSTILE",
    "HOSTILE_ATTEMPTS",
    "REMOTE",
    "STEP",
    "TICK",
    "WORK",
    "app",
    "flow",
]

WORK = "chaos.work"
DOOMED = "chaos.doomed"
TICK = "chaos.tick"
STEP = "chaos.step"
FLOW = "chaos.flow"
REMOTE = "chaos.remote"
"""Work for the gRPC consumers of an ``atp server`` (``chaos.consumer``): no handler here."""
HOSTILE = {
    kind: f"chaos.hostile.{kind}" for kind in ("raises", "hangs", "exits", "interrupts", "nan")
}
"""Each way a handler misbehaves -> its subject."""
HOSTILE_ATTEMPTS = 3
HANG_TIMEOUT = 1.0

app = App("chaos")

flow = Workflow(FLOW, version=1)
_extract = flow.step(STEP, name="extract")
_parts = [flow.step(STEP, name=f"part-{n}", after=_extract) for n in range(4)]
flow.step(STEP, name="load", after=_parts)
app.workflow(flow)


def _note(ev: str) -> None:
    task = current_task()
    record(os.environ[LEDGER_ENV], f"exec-{os.getpid()}", ev=ev, task=task.id, attempt=task.attempt)


@app.task(WORK)
async def work(key: str, pause: float = 0.0) -> str:
    """Do some work; an execution counts in the ledger only once it ran to the end."""
    _note("start")
    await asyncio.sleep(pause)
    _note("done")
    return key


@app.task(DOOMED)
async def doomed(key: str, pause: float = 0.0) -> None:
    """Fail on purpose, for good: the task must end DEAD, and only such tasks may."""
    _note("start")
    raise Fail(f"{key} is designed to fail")


@app.task(TICK)
async def tick(key: str) -> None:
    """One cron firing: recorded, so the report can count executions per tick."""
    _note("start")
    _note("done")


@app.task(STEP)
async def step(input: dict[str, Any], parents: dict[str, Any]) -> int:
    """One workflow step: works a little, so a kill finds steps running."""
    _note("start")
    await asyncio.sleep(float(input.get("pause", 0.1)))
    _note("done")
    return 1


@app.task(HOSTILE["raises"], max_attempts=HOSTILE_ATTEMPTS)
async def raises(key: str, pause: float = 0.0) -> None:
    """An ordinary bug: retried, then dead after its attempts."""
    _note("start")
    raise ValueError(f"{key}: a bug in the handler")


@app.task(HOSTILE["hangs"], max_attempts=HOSTILE_ATTEMPTS, timeout=HANG_TIMEOUT)
async def hangs(key: str, pause: float = 0.0) -> None:
    """Never returns: each attempt must be stopped at its timeout."""
    _note("start")
    await asyncio.sleep(3600)


@app.task(HOSTILE["exits"], max_attempts=HOSTILE_ATTEMPTS)
async def exits(key: str, pause: float = 0.0) -> None:
    """Calls sys.exit() from inside the worker's event loop."""
    _note("start")
    sys.exit(f"{key} asks the process to exit")


@app.task(HOSTILE["interrupts"], max_attempts=HOSTILE_ATTEMPTS)
async def interrupts(key: str, pause: float = 0.0) -> None:
    """Raises KeyboardInterrupt, as a stray Ctrl-C in library code would."""
    _note("start")
    raise KeyboardInterrupt


@app.task(HOSTILE["nan"], max_attempts=HOSTILE_ATTEMPTS)
async def nan(key: str, pause: float = 0.0) -> float:
    """Returns NaN, which JSON cannot carry."""
    _note("start")
    return math.nan
