"""The app the browser tests run under ``atp dev --api``: something in every state.

- ``console.work`` succeeds at once;
- ``console.hold`` stays RUNNING until it is cancelled;
- ``console.fail`` always fails, with one attempt: its tasks go straight to DEAD;
- ``console.report`` is published by a daily cron schedule, ``console.nightly``;
- the workflow ``console.approve`` checks, then waits for the signal ``manager.decision``
  (a human step), then pays.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from atp.sdk import App, Workflow

app = App("console-browser")

approval = Workflow("console.approve", version=1)
check = approval.step("console.check")
decision = approval.wait_signal("manager.decision", after=check, timeout=timedelta(days=3))
approval.step("console.pay", after=decision)
app.workflow(approval)


@app.task("console.work")
async def work(n: int = 0) -> dict[str, int]:
    return {"n": n, "double": 2 * n}


@app.task("console.hold", timeout="1h")
async def hold(note: str = "") -> str:
    """Wait for an event nothing sets: RUNNING until cancelled or the process ends."""
    await asyncio.Event().wait()
    return note


@app.task("console.fail", max_attempts=1)
async def fail(reason: str = "the ledger is closed") -> None:
    raise ValueError(reason)


@app.cron("0 3 * * *", subject="console.report", name="console.nightly")
async def report() -> str:
    return "report built"


@app.task("console.check")
@app.task("console.pay")
async def step(input: Any, parents: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "input": input}
