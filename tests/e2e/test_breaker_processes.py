"""Circuit breakers (ADR 0040) with real processes: two ``atp worker`` processes of one
group and one ``atp scheduler`` share a breaker the store keeps.

The downstream is a file: while it exists the handler fails. Attempts are read from the
ledger file the handlers write (``breaker_app.py``), so the test sees starts, not what the
store says of them. Every wait is a bounded poll.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from atp.core.flow.breaker import Circuit, breaker_key
from atp.core.platform import Platform
from atp.core.ports import BreakerLedger
from atp.core.service import PublishRequest, TaskService
from tests.e2e._processes import Proc, eventually
from tests.e2e.breaker_app import POLICY, SUBJECT
from tests.e2e.test_flow_processes import records, runs, wait_finished

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

APP = "breaker_app:app"
KEY = breaker_key("default", SUBJECT)
STALE = 1.5
"""Seconds after a breaker opens during which the other worker may not have read it."""


async def circuit(platform: Platform) -> Circuit:
    store = platform.store
    assert isinstance(store, BreakerLedger)
    states = {state.key: state for state in await store.breakers()}
    return states[KEY].circuit if KEY in states else Circuit.CLOSED


async def test_a_failing_subject_opens_waits_unspent_probes_alone_and_closes(
    start: Callable[..., Proc], platform: Platform, tmp_path: Path
) -> None:
    ledger, down = tmp_path / "ledger.jsonl", tmp_path / "down"
    down.touch()
    scheduler = start("scheduler", "scheduler")
    workers = [
        start(f"worker{i}", "worker", APP, FLOW_LEDGER=str(ledger), BREAKER_DOWN=str(down))
        for i in (1, 2)
    ]
    procs = (scheduler, *workers)
    published = await TaskService(platform).publish(
        [PublishRequest(SUBJECT, {"n": n}) for n in range(20)]
    )
    ids = [p.id for p in published]

    async def is_open() -> bool:
        return await circuit(platform) is Circuit.OPEN

    await eventually(is_open, 60, "the breaker opens", *procs)
    store = platform.store
    assert isinstance(store, BreakerLedger)
    (opened,) = [s for s in await store.breakers() if s.key == KEY]
    while_open = [
        run for run in runs(ledger) if opened.changed_at + STALE < run.start < opened.open_until
    ]
    await eventually(lambda: _later_than(ledger, opened.open_until), 30, "a probe runs", *procs)
    assert not while_open, f"{len(while_open)} attempts started while the breaker was open"
    down.unlink()  # the downstream recovers: the next probe succeeds
    await wait_finished(platform, ids, 60, *procs)

    found = await records(platform, ids)
    assert {r.state.value for r in found} == {"SUCCEEDED"}
    attempts = runs(ledger)
    # Held tasks spent nothing: every attempt a task counts is one its handler started.
    assert sum(r.task.attempt for r in found) == len(attempts)
    late = [run.start for run in attempts if run.start > opened.changed_at + STALE]
    probes = [t for t in late if t < _first_burst(late)]
    for before, after in itertools.pairwise(probes):
        assert after - before >= POLICY.open_for - 0.5, f"two probes {after - before:.2f}s apart"
    assert await circuit(platform) is Circuit.CLOSED


async def _later_than(ledger: Path, at: float) -> bool:
    return any(run.start >= at for run in runs(ledger))


def _first_burst(starts: list[float]) -> float:
    """When the held tasks ran after the breaker closed: the first start followed within
    a second by another (probes run alone, at least ``open_for`` apart)."""
    for before, after in itertools.pairwise(sorted(starts)):
        if after - before < 1.0:
            return before
    return float("inf")
