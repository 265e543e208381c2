"""The workload: producers publishing keyed tasks through the faults, and a few cancels.

Every task carries an idempotency key, and a producer that gets an error publishes the
same keys again until they are accepted (or the run gives up on them), as a careful
producer does: the invariants then check that no key became two tasks.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from atp.core.errors import AlreadyExists, AtpError
from atp.sdk.client import Client
from chaos.app import DOOMED, FLOW, HOSTILE, REMOTE, WORK
from chaos.ledger import Ledger

__all__ = ["Produced", "Workload", "produce"]


@dataclass(frozen=True)
class Workload:
    """How much to publish, over how long, and of what kind."""

    tasks: int = 400
    doomed: int = 10
    """Tasks of ``chaos.doomed``: the only ones allowed to end dead."""
    delayed: float = 0.3
    """Share of tasks published with a delay of 1 to ``max_delay`` seconds."""
    max_delay: float = 8.0
    cancelled: float = 0.1
    """Share of delayed tasks cancelled right after they are accepted."""
    pause: tuple[float, float] = (0.02, 0.3)
    """How long each execution works, drawn uniformly, in seconds."""
    batch: int = 20
    duration: float = 15.0
    """Publishing is spread over this many seconds."""
    give_up: float = 60.0
    """A batch still refused after this many seconds is abandoned (and reported)."""
    runs: int = 10
    """Workflow runs of ``chaos.flow`` started while publishing, spread over the batches."""
    hostile: int = 0
    """Tasks of each hostile handler kind (``chaos.app.HOSTILE``) in ``hostile_kinds``."""
    hostile_kinds: tuple[str, ...] = tuple(HOSTILE)
    remote: float = 0.0
    """Share of the work published as ``chaos.remote``, for gRPC consumers (api stacks)."""


@dataclass
class Produced:
    accepted: int = 0
    errors: int = 0
    abandoned: int = 0
    cancels: int = 0
    runs: int = 0
    remote: int = 0
    """Accepted ``chaos.remote`` tasks: the gRPC consumers' share."""


async def produce(
    client: Client, workload: Workload, ledger: Ledger, rng: random.Random
) -> Produced:
    """Publish the workload in batches at an even pace; return what happened."""
    plan = _plan(workload, rng)
    batches = [plan[i : i + workload.batch] for i in range(0, len(plan), workload.batch)]
    pace = workload.duration / max(len(batches), 1)
    every = max(1, len(batches) // max(workload.runs, 1))
    produced = Produced()
    for n, batch in enumerate(batches):
        ids = await _publish(client, batch, workload, ledger, produced)
        await _cancel_some(client, batch, ids, workload, ledger, produced, rng)
        if n % every == 0 and n // every < workload.runs:
            await _start_run(client, f"chaos-run-{n // every}", workload, ledger, produced)
        await asyncio.sleep(pace)
    return produced


@dataclass(frozen=True)
class Planned:
    key: str
    subject: str
    pause: float
    delay: float


def _plan(workload: Workload, rng: random.Random) -> list[Planned]:
    def delay() -> float:
        return rng.uniform(1.0, workload.max_delay) if rng.random() < workload.delayed else 0.0

    def subject() -> str:
        return REMOTE if rng.random() < workload.remote else WORK

    work = [
        Planned(f"w-{n}", subject(), rng.uniform(*workload.pause), delay())
        for n in range(workload.tasks)
    ]
    doomed = [Planned(f"d-{n}", DOOMED, 0.0, 0.0) for n in range(workload.doomed)]
    hostile = [
        Planned(f"h-{kind}-{n}", HOSTILE[kind], 0.0, 0.0)
        for kind in workload.hostile_kinds
        for n in range(workload.hostile)
    ]
    planned = work + doomed + hostile
    rng.shuffle(planned)
    return planned


async def _publish(
    client: Client, batch: list[Planned], workload: Workload, ledger: Ledger, produced: Produced
) -> dict[str, str]:
    """Publish until accepted or abandoned; return the accepted ids by key."""
    requests = [
        Client.request(
            p.subject,
            {"key": p.key, "pause": p.pause},
            delay=p.delay or None,
            idempotency_key=p.key,
        )
        for p in batch
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + workload.give_up
    while True:
        try:
            published = await client.publish_many(requests)
        except AtpError as exc:
            produced.errors += 1
            ledger.refused([p.key for p in batch], f"{type(exc).__name__}: {exc}")
            if loop.time() > deadline:
                produced.abandoned += len(batch)
                return {}
            await asyncio.sleep(0.5)
            continue
        for planned, result in zip(batch, published, strict=True):
            ledger.accepted(planned.key, result.id, planned.subject, planned.delay)
        produced.accepted += len(batch)
        produced.remote += sum(p.subject == REMOTE for p in batch)
        return {p.key: r.id for p, r in zip(batch, published, strict=True)}


async def _cancel_some(
    client: Client,
    batch: list[Planned],
    ids: dict[str, str],
    workload: Workload,
    ledger: Ledger,
    produced: Produced,
    rng: random.Random,
) -> None:
    for planned in batch:
        if planned.delay and rng.random() < workload.cancelled:
            task_id = ids.get(planned.key)
            if task_id is None:
                continue
            try:
                record = await client.cancel(task_id)
            except AtpError:
                continue  # a cancel that failed changed nothing we rely on
            ledger.cancelled(planned.key, task_id, record.state.value)
            produced.cancels += 1


async def _start_run(
    client: Client, run_id: str, workload: Workload, ledger: Ledger, produced: Produced
) -> None:
    """Start a run under a fixed id, again after an error: AlreadyExists means it started."""
    deadline = asyncio.get_running_loop().time() + workload.give_up
    while True:
        try:
            await client.start_workflow(FLOW, {"pause": 0.1}, run_id=run_id)
        except AlreadyExists:
            pass
        except AtpError as exc:
            produced.errors += 1
            ledger.refused([run_id], f"{type(exc).__name__}: {exc}")
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.5)
            continue
        ledger.started_run(run_id)
        produced.runs += 1
        return
