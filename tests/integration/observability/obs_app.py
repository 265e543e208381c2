"""The app the observability tests run in a real ``atp dev`` process."""

from __future__ import annotations

import asyncio
import logging

from atp.core.context import current_task
from atp.core.errors import Fail, Retry
from atp.sdk import App

app = App("obs")
log = logging.getLogger("obs.app")


@app.task("obs.ok")
async def ok() -> str:
    log.info("obs handler ran")
    return "fine"


@app.task("obs.flaky")
async def flaky() -> str:
    if current_task().attempt == 1:
        raise Retry(delay=0.2, reason="not yet")
    return "second time"


@app.task("obs.doomed")
async def doomed() -> None:
    raise Fail("never")


@app.task("obs.slow")
async def slow() -> None:
    await asyncio.sleep(60)  # until it is cancelled
