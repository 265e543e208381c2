"""Fair groups (ADR 0039) with real processes: two ``atp worker`` processes and one
``atp scheduler`` behind a subject concurrency limit, the backlog published beforehand.

On the session's Redis (store and transport) and on SQLite beside NATS, as
``test_flow_processes.py`` runs. The tasks waiting behind the full slot are held in the
store, parked in the slot's waiter list, so the ledger's wake order, not the transport,
decides which group runs next. What started is read from the app's ledger file
(``flow_app.py``), written by the handlers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from atp.core.flow.rules import Limit
from atp.core.flow.service import FlowService
from atp.core.model import State
from atp.core.platform import Platform
from atp.core.service import MAX_BATCH, PublishRequest, TaskService
from tests.e2e._processes import Proc, eventually
from tests.e2e.flow_app import SUBJECT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

APP = "flow_app:app"
WINDOW = 4
"""The subject's concurrency limit: tasks running at once across both workers."""
WEIGHTS = {"a": 1, "b": 2, "c": 3}
# A's backlog is 100 times B's and C's; theirs are large enough that every group still
# waits when the last measured task starts (C takes half the starts: 300 of 600).
BACKLOG = {"a": 33_000, "b": 330, "c": 330}
MEASURED = 600


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


def starts(ledger: Path) -> list[tuple[float, float | None, str]]:
    """(start, end, group) of every attempt the handlers noted, in start order."""
    if not ledger.exists():
        return []
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    ends = {(n["id"], n["start"]): n["end"] for n in lines if n["phase"] == "end"}
    found = [
        (n["start"], ends.get((n["id"], n["start"])), n["group"])
        for n in lines
        if n["phase"] == "start"
    ]
    return sorted(found, key=lambda run: run[0])


def most_at_once(runs: list[tuple[float, float | None, str]]) -> int:
    """The most attempts running at one instant (an attempt without an end runs on)."""
    edges = sorted(
        [(start, 1) for start, _, _ in runs] + [(end, -1) for _, end, _ in runs if end is not None]
    )
    running = most = 0
    for _, step in edges:  # at a tie an end (-1) sorts before a start
        running += step
        most = max(most, running)
    return most


async def publish_backlog(platform: Platform) -> int:
    """Publish every group's backlog, A's first; return how many publish calls it took."""
    service = TaskService(platform)
    requests = [
        PublishRequest(SUBJECT, {"n": n, "pause": 0.01}, group_key=f"tenant:{group}")
        for group, count in BACKLOG.items()
        for n in range(count)
    ]
    calls = range(0, len(requests), MAX_BATCH)
    for at in calls:
        await service.publish(requests[at : at + MAX_BATCH])
    return len(calls)


async def test_a_weighted_split_holds_across_two_worker_processes(
    start: Callable[..., Proc], platform: Platform, ledger: Path
) -> None:
    flow = FlowService(platform)
    await flow.set_limit(Limit(SUBJECT, concurrency=WINDOW))
    for group, weight in WEIGHTS.items():
        await flow.set_limit(Limit(f"tenant:{group}", key=True, weight=weight))
    begun = time.monotonic()
    batches = await publish_backlog(platform)
    published = time.monotonic() - begun
    # A publish finding room takes the slot (for a lease) and dispatches the task; that
    # happens once per batch at most, as the slots of the batch before ran out unclaimed.
    ready = (await platform.store.counts()).get((SUBJECT, State.READY), 0)
    assert ready <= WINDOW * batches, f"{ready} tasks were dispatched at publish"

    scheduler = start("scheduler", "scheduler")
    workers = [start(f"worker{i}", "worker", APP, FLOW_LEDGER=str(ledger)) for i in (1, 2)]

    async def measured() -> bool:
        return len(starts(ledger)) >= ready + MEASURED

    await eventually(measured, 60, f"{MEASURED} tasks start", scheduler, *workers)
    ran = time.monotonic() - begun - published

    # The tasks dispatched at publish start first: they never waited for the slot.
    first = starts(ledger)[ready : ready + MEASURED]
    split = Counter(group for _, _, group in first)
    total = sum(WEIGHTS.values())
    for group, weight in WEIGHTS.items():
        share = MEASURED * weight / total
        assert abs(split[f"tenant:{group}"] - share) <= 0.1 * share, (
            f"split {dict(split)} of the first {MEASURED} starts, weights {WEIGHTS}"
            f" (published in {published:.1f}s, ran in {ran:.1f}s)"
        )
    assert most_at_once(first) <= WINDOW, "more tasks ran at once than the limit lets"
