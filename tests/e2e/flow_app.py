"""The app the flow-control process tests run: every attempt is written to a ledger file.

The file is named by ``$FLOW_LEDGER``. Each attempt appends a ``start`` line when its
handler begins and an ``end`` line when it returns, each one short JSON object written
by one ``os.write`` on an ``O_APPEND`` descriptor, so lines from several processes never
interleave. A start line without its end is an attempt its process did not live through.

The payload says how long to sleep, so overlapping attempts would show: ``pause``
seconds, or ``first`` seconds on the first attempt (a slot-holder a test kills).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from atp.core.context import current_task
from atp.sdk.app import App

SUBJECT = "flow.work"

app = App("flow-e2e")


def note(phase: str, **fields: Any) -> None:
    """Append one line to the ledger file in a single write."""
    task = current_task()
    line = {
        "phase": phase,
        "id": task.id,
        "key": task.concurrency_key or task.rate_key or task.idempotency_key,
        "group": task.group_key,
        "attempt": task.attempt,
        "pid": os.getpid(),
        **fields,
    }
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    fd = os.open(os.environ["FLOW_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@app.task(SUBJECT)
async def work(payload: dict[str, Any]) -> int:
    """Note the start, sleep as the payload says, note the end; return the pid."""
    start = time.time()
    note("start", start=start, payload=payload)
    first = payload.get("first")
    pause = first if first is not None and current_task().attempt == 1 else payload.get("pause")
    await asyncio.sleep(float(pause or 0.0))
    note("end", start=start, end=time.time(), payload=payload)
    return os.getpid()
