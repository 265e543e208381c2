"""The demo app that ``atp dev`` runs when no app is named.

Try it from the repository root, with ``atp dev`` running in another terminal::

    atp publish orders.close '{"order_id": 42}' --delay 30s --idempotency-key order-42
    atp publish reports.build '{"name": "daily", "seconds": 20}'   # slow; try `atp task cancel`
    atp publish payments.charge '{"amount": 9.5}'     # fails twice, retries, then succeeds
    atp publish emails.send '{"to": "ada@example.com"}'   # a sync handler, run in a thread
    atp publish imports.parse '{"url": "s3://bucket/broken.csv"}'   # always fails: see `atp dlq ls`
"""

from __future__ import annotations

import asyncio
import logging
import time

from atp.core.context import current_task
from atp.sdk.app import App

app = App("demo")
log = logging.getLogger("demo")


@app.task("orders.close", max_attempts=5, timeout=30)
async def close_order(order_id: int) -> dict[str, object]:
    """Close an unpaid order: the classic delayed task."""
    log.info("closing order %s", order_id)
    return {"order_id": order_id, "closed": True}


@app.task("reports.build", timeout="5m")
async def build_report(name: str, seconds: float = 10.0) -> str:
    """Take a while; cancelling it (`atp task cancel ID`) stops it at the next heartbeat."""
    log.info("building report %r for %gs", name, seconds)
    await asyncio.sleep(seconds)
    return f"report {name} ready"


@app.task("payments.charge", max_attempts=5)
async def charge(amount: float, failures: int = 2) -> dict[str, object]:
    """Fail the first ``failures`` attempts, as a flaky payment provider would, then succeed."""
    attempt = current_task().attempt
    if attempt <= failures:
        raise ConnectionError(f"payment provider timed out (attempt {attempt})")
    return {"charged": amount, "attempt": attempt}


@app.task("emails.send", timeout=10)
def send_email(to: str, subject: str = "hello") -> str:
    """A plain function: atp runs sync handlers in a thread, so blocking calls are fine."""
    time.sleep(0.2)
    log.info("sent %r to %s", subject, to)
    return f"sent to {to}"


@app.task("imports.parse", max_attempts=2)
async def parse_import(url: str) -> None:
    """Always fail, so the dead-letter queue has something to show."""
    raise ValueError(f"{url}: line 1: expected a header row")
