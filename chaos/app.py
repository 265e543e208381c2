"""The app every chaos deployment runs: handlers that write the ledger.

``chaos.work`` records its start, works for ``pause`` seconds (so a kill finds tasks
running) and records its end. ``chaos.doomed`` always fails: its tasks are the only ones
that may end in the dead-letter queue. ``chaos.tick`` is what a one-second cron schedule
fires.
"""

from __future__ import annotations

import asyncio
import os

from atp.core.context import current_task
from atp.core.errors import Fail
from atp.sdk.app import App
from chaos.ledger import LEDGER_ENV, record

__all__ = ["DOOMED", "TICK", "WORK", "app"]

WORK = "chaos.work"
DOOMED = "chaos.doomed"
TICK = "chaos.tick"

app = App("chaos")


def _note(ev: str) -> None:
    task = current_task()
    record(os.environ[LEDGER_ENV], f"exec-{os.getpid()}", ev=ev, task=task.id,
           attempt=task.attempt)  # fmt: skip


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
