"""The app every chaos deployment runs: handlers that write the ledger.

``chaos.work`` records its start, works for ``pause`` seconds (so a kill finds tasks
running) and records its end. ``chaos.doomed`` always fails: its tasks are the only ones
that may end in the dead-letter queue. ``chaos.tick`` is what a one-second cron schedule
fires. ``chaos.flow`` is a workflow of ``chaos.step`` tasks: one step, a fan-out of four,
a fan-in.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from atp.core.context import current_task
from atp.core.errors import Fail
from atp.sdk import Workflow
from atp.sdk.app import App
from chaos.ledger import LEDGER_ENV, record

__all__ = ["DOOMED", "FLOW", "STEP", "TICK", "WORK", "app", "flow"]

WORK = "chaos.work"
DOOMED = "chaos.doomed"
TICK = "chaos.tick"
STEP = "chaos.step"
FLOW = "chaos.flow"

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
