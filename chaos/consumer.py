"""A gRPC consumer of an ``atp server``, as a chaos deployment runs it.

    python -m chaos.consumer grpc://host:port

It leases ``chaos.remote`` tasks over gRPC, records each execution in the ledger as the
handlers of ``chaos.app`` do (``start``, then ``done``), and acks. When the server or the
link goes away it connects again; a task whose ack is lost runs again after its lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

from atp.core.errors import AtpError
from atp.sdk.client import Client
from chaos.app import REMOTE
from chaos.ledger import LEDGER_ENV, record

if TYPE_CHECKING:
    from atp.sdk._grpc import RemoteDelivery

__all__ = ["consume"]

log = logging.getLogger("chaos.consumer")
GROUP = "chaos-grpc"
IN_FLIGHT = 8


async def consume(url: str) -> None:
    """Lease, run and ack ``chaos.remote`` tasks from ``url`` until cancelled."""
    running: set[asyncio.Task[None]] = set()
    while True:
        try:
            async with Client.connect(url) as client:
                stream = client.retrieve(REMOTE, group=GROUP, max_in_flight=IN_FLIGHT)
                async for delivery in stream:
                    job = asyncio.create_task(_run(delivery))
                    running.add(job)
                    job.add_done_callback(running.discard)
        except (AtpError, OSError) as exc:  # the server or the link is down: again soon
            log.warning("consumer: stream ended: %s", exc)
        await asyncio.sleep(0.5)


async def _run(delivery: RemoteDelivery) -> None:
    task = delivery.task
    payload = task.payload if isinstance(task.payload, dict) else {}
    _note("start", task.id, task.attempt)
    await asyncio.sleep(float(payload.get("pause", 0.0)))
    _note("done", task.id, task.attempt)
    try:
        await delivery.ack(payload.get("key"))
    except AtpError as exc:  # lease lost or server gone: the task runs again
        log.warning("consumer: ack of %s failed: %s", task.id, exc)


def _note(ev: str, task_id: str, attempt: int) -> None:
    record(os.environ[LEDGER_ENV], f"exec-{os.getpid()}", ev=ev, task=task_id, attempt=attempt)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(consume(sys.argv[1]))
