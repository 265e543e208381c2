"""The app the workflow end-to-end tests run under ``atp dev``.

Every step that completes appends one line, ``<step> <run> <pid>``, to the ledger file
named by ``$ATP_E2E_LEDGER``, so a test can count how often each step ran, across kills.
``crm.sync`` fails its first two attempts of each run (it counts them in the ledger too).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from atp.core.context import current_task
from atp.sdk.app import App
from atp.sdk.workflow import Workflow

app = App("workflow-e2e")
FAN_OUT = 100

signup = Workflow("user.signup", version=1)
create = signup.step("users.create")
mail = signup.step("mail.welcome", after=create)
crm = signup.step("crm.sync", after=create, compensate="crm.unsync", retries=3)
signup.step("users.activate", after=[mail, crm])
app.workflow(signup)

etl = Workflow("etl.daily", version=1)
extract = etl.step("etl.extract")
parts = [etl.step("etl.transform", name=f"part-{i:03d}", after=extract) for i in range(FAN_OUT)]
etl.step("etl.load", after=parts)
app.workflow(etl)


@app.task("users.create")
@app.task("mail.welcome")
@app.task("users.activate")
@app.task("etl.extract")
@app.task("etl.load")
async def plain(input: Any, parents: dict[str, Any]) -> str:
    return _record("done")


@app.task("crm.sync")
async def crm_sync(input: Any, parents: dict[str, Any]) -> str:
    if _count("attempt") < 2:
        _record("attempt")
        raise RuntimeError("CRM unavailable")
    return _record("done")


@app.task("crm.unsync")
async def crm_unsync(input: Any, step: str, result: Any) -> str:
    return _record("undo")


@app.task("etl.transform")
async def transform(input: Any, parents: dict[str, Any]) -> str:
    """Take a moment, so a kill finds some of the fan-out running."""
    await asyncio.sleep(random.uniform(0.05, 0.2))
    return _record("done")


def _record(what: str) -> str:
    task = current_task()
    with open(os.environ["ATP_E2E_LEDGER"], "a") as ledger:
        ledger.write(f"{task.step} {task.workflow_run} {what} {os.getpid()}\n")
    return f"{task.step}:{what}"


def _count(what: str) -> int:
    task = current_task()
    path = os.environ["ATP_E2E_LEDGER"]
    if not os.path.exists(path):
        return 0
    with open(path) as ledger:
        return sum(line.split()[:3] == [task.step, task.workflow_run, what] for line in ledger)
