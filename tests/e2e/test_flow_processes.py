"""Flow control (ADR 0038) with real processes: two ``atp worker`` processes and one
``atp scheduler`` share a ledger the store keeps, and a producer in the test process.

The backend is the session's Redis (this test's own key prefix) as store and transport,
or the session's NATS (a stream of its own) beside a SQLite store. What ran, when and
where is read from the app's ledger file (``flow_app.py``), written by the handlers
themselves, so the tests see starts, not what the store says of them. Every wait is a
bounded poll, except the one that checks that nothing runs while a subject is paused.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atp.core.flow.rules import PAUSE_PREFIX, Limit, parse_rate
from atp.core.flow.service import FlowService
from atp.core.model import FINAL_STATES, Dedup, DedupMode, State, TaskRecord
from atp.core.platform import Platform
from atp.core.service import Published, PublishRequest, TaskService
from tests.e2e._processes import SHORT, Proc, eventually
from tests.e2e.flow_app import SUBJECT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

APP = "flow_app:app"
LEASE = float(SHORT["ATP_LEASE"])


@dataclass(frozen=True, slots=True)
class Run:
    """One attempt, as its handler noted it; ``end`` is None if its process died."""

    id: str
    key: str | None
    attempt: int
    pid: int
    start: float
    end: float | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Cluster:
    scheduler: Proc
    workers: tuple[Proc, Proc]

    @property
    def procs(self) -> tuple[Proc, ...]:
        return (self.scheduler, *self.workers)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


async def started(start: Callable[..., Proc], ledger: Path) -> Cluster:
    """A scheduler and two workers of ``flow_app``, each past its banner. Rules set
    before this are in force at once: a worker reads them before it takes a task."""
    scheduler = start("scheduler", "scheduler")
    one, two = (start(f"worker{i}", "worker", APP, FLOW_LEDGER=str(ledger)) for i in (1, 2))
    cluster = Cluster(scheduler, (one, two))

    async def ready() -> bool:
        return "atp scheduler (pid" in scheduler.text() and all(
            "atp worker (pid" in worker.text() for worker in cluster.workers
        )

    await eventually(ready, 30, "the scheduler and both workers start", *cluster.procs)
    return cluster


def runs(ledger: Path) -> list[Run]:
    """Every attempt the handlers noted, in the order they started."""
    if not ledger.exists():
        return []
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    ends = {(n["id"], n["attempt"], n["start"]): n["end"] for n in lines if n["phase"] == "end"}
    found = [
        Run(
            n["id"],
            n["key"],
            n["attempt"],
            n["pid"],
            n["start"],
            ends.get((n["id"], n["attempt"], n["start"])),
            n["payload"],
        )
        for n in lines
        if n["phase"] == "start"
    ]
    return sorted(found, key=lambda run: run.start)


def request(
    n: int, *, pause: float = 0.0, first: float | None = None, **options: Any
) -> PublishRequest:
    """Task ``n`` of the app; its handler sleeps ``pause`` (``first`` on attempt 1)."""
    payload: dict[str, Any] = {"n": n, "pause": pause}
    if first is not None:
        payload["first"] = first
    return PublishRequest(SUBJECT, payload, **options)


async def publish(platform: Platform, requests: Sequence[PublishRequest]) -> list[Published]:
    return await TaskService(platform).publish(requests)


async def records(platform: Platform, ids: Sequence[str]) -> list[TaskRecord]:
    found = await platform.store.get(list(ids))
    assert all(record is not None for record in found), "a task is gone"
    return [record for record in found if record is not None]


async def finished(platform: Platform, ids: Sequence[str]) -> bool:
    return all(record.state in FINAL_STATES for record in await records(platform, ids))


async def wait_finished(
    platform: Platform, ids: Sequence[str], timeout: float, *alive: Proc
) -> None:
    await eventually(lambda: finished(platform, ids), timeout, f"{len(ids)} tasks end", *alive)


def assert_succeeded_first_time(found: Sequence[TaskRecord]) -> None:
    bad = [(r.id, r.state, r.task.attempt) for r in found]
    bad = [b for b in bad if b[1:] != (State.SUCCEEDED, 1)]
    assert not bad, f"{len(bad)} tasks did not succeed at their first attempt: {bad[:5]}"


def assert_ran_once_each(found: Sequence[Run], ids: Sequence[str]) -> None:
    ran = sorted(run.id for run in found)
    assert ran == sorted(ids), f"{len(ran)} attempts for {len(ids)} tasks"


def assert_serial(found: Sequence[Run]) -> None:
    """No two attempts overlap: each starts after the one before it ended."""
    ordered = sorted(found, key=lambda run: run.start)
    for before, after in itertools.pairwise(ordered):
        assert before.end is not None, f"{before} never ended"
        assert after.start >= before.end, f"{after} started while {before} ran"


async def test_one_task_of_a_key_runs_at_a_time(
    start: Callable[..., Proc], platform: Platform, ledger: Path
) -> None:
    await FlowService(platform).set_limit(Limit("k*", key=True, concurrency=1))
    cluster = await started(start, ledger)
    keys = [f"k{n % 3}" for n in range(60)]
    published = await publish(
        platform, [request(n, pause=0.05, concurrency_key=key) for n, key in enumerate(keys)]
    )
    ids = [p.id for p in published]
    await wait_finished(platform, ids, 60, *cluster.procs)

    assert_succeeded_first_time(await records(platform, ids))
    found = runs(ledger)
    assert_ran_once_each(found, ids)
    for key in ("k0", "k1", "k2"):
        of_key = [run for run in found if run.key == key]
        assert len(of_key) == 20
        assert_serial(of_key)
    assert {run.pid for run in found} == {w.pid for w in cluster.workers}, "a worker ran none"


async def test_a_killed_slot_holder_frees_its_slot_within_a_lease(
    start: Callable[..., Proc], platform: Platform, ledger: Path
) -> None:
    cluster = await started(start, ledger)
    flow = FlowService(platform)
    (first,) = await publish(platform, [request(0, first=30.0, concurrency_key="k")])
    holding = await eventually(
        lambda: _runs_of(ledger, first.id), 30, "the first task starts", *cluster.procs
    )
    (second,) = await publish(platform, [request(1, concurrency_key="k")])

    async def parked() -> bool:
        return (await flow.status()).waiting.get("k:k") == 1

    await eventually(parked, 30, "the second task waits for the slot", *cluster.procs)
    (victim,) = [w for w in cluster.workers if w.pid == holding[0].pid]
    (survivor,) = [w for w in cluster.workers if w is not victim]
    killed_at = time.time()
    victim.signal(signal.SIGKILL)

    alive = (cluster.scheduler, survivor)
    found = await eventually(lambda: _runs_of(ledger, second.id), 30, "it starts", *alive)
    # The bound: the victim's last heartbeat moved its slot's until to at most
    # killed_at + LEASE, and after that the slot counts no more. The scheduler's flow
    # sweep (every reap interval, 0.5 s) then wakes the waiter, which goes through the
    # forwarder and the transport to the survivor. The killed task, back after its own
    # lease and a reap, may take the slot first for its short second attempt and hand
    # it over on release. That is LEASE + about 1 s; 2 * LEASE + 3 s leaves a lease and
    # more for a loaded machine, and a slot kept for ever (or a lost wake-up, that
    # waits for the 10-minute backstop) still fails.
    waited = found[0].start - killed_at
    assert 0 < waited < 2 * LEASE + 3, f"the second task started {waited:.2f}s after the kill"
    ids = [first.id, second.id]
    await wait_finished(platform, ids, 30, *alive)

    before, after = await records(platform, ids)
    assert (before.state, before.task.attempt) == (State.SUCCEEDED, 2), "not redelivered"
    assert (after.state, after.task.attempt) == (State.SUCCEEDED, 1)
    assert_serial([run for run in runs(ledger) if run.end is not None])


async def _runs_of(ledger: Path, task_id: str) -> list[Run]:
    return [run for run in runs(ledger) if run.id == task_id]


RATE = 50
BURST = 5
RATED = 300
START_JITTER = 0.02
"""Seconds a handler may start after its admission (one event-loop turn, generously)."""


async def test_a_rate_limit_holds_back_starts_across_both_workers(
    start: Callable[..., Proc], platform: Platform, ledger: Path
) -> None:
    limit = Limit(SUBJECT, rate=parse_rate(f"{RATE}/s"), burst=BURST)
    await FlowService(platform).set_limit(limit)
    cluster = await started(start, ledger)
    begun = time.time()
    ids = [p.id for p in await publish(platform, [request(n) for n in range(RATED)])]
    await wait_finished(platform, ids, 60, *cluster.procs)
    took = time.time() - begun

    assert_succeeded_first_time(await records(platform, ids))
    found = runs(ledger)
    assert_ran_once_each(found, ids)
    starts = [run.start for run in found]
    # A bucket admits at most BURST + RATE * T in any T seconds: check every start as
    # the opening of a one-second window. A handler starts a few ms after its admission,
    # so the starts of one second are admissions of at most 1 + START_JITTER seconds.
    busiest = max(bisect.bisect_right(starts, t + 1.0) - i for i, t in enumerate(starts))
    bound = BURST + int(RATE * (1 + START_JITTER))
    assert busiest <= bound, f"{busiest} starts within one second, bound {bound}"
    # Held back, not dropped: the first BURST at once, then one every 1/RATE seconds
    # (less 0.1 s for the jitter between an admission and its handler's start), and not
    # held much longer than that.
    least = (RATED - BURST) / RATE
    assert starts[-1] - starts[0] >= least - 0.1, f"ran in {starts[-1] - starts[0]:.2f}s"
    assert took < 2 * least, f"{RATED} tasks took {took:.2f}s, at least {least:.2f}s expected"
    assert {run.pid for run in found} == {w.pid for w in cluster.workers}, "a worker ran none"


async def test_a_debounced_burst_runs_only_its_last_task(
    start: Callable[..., Proc], platform: Platform, ledger: Path
) -> None:
    cluster = await started(start, ledger)
    debounce = Dedup(DedupMode.DEBOUNCE, 1.0)
    published: list[Published] = []
    for n in range(100):  # one call each, back to back: each replaces the one before
        published += await publish(platform, [request(n, idempotency_key="d", dedup=debounce)])
    ids = [p.id for p in published]
    assert [p.replaced for p in published[1:]] == ids[:-1], "a publish replaced no pending task"
    last = published[-1]
    await wait_finished(platform, ids, 30, *cluster.procs)

    found = await records(platform, ids)
    assert [r.id for r in found if r.state is not State.CANCELLED] == [last.id]
    assert_succeeded_first_time(found[-1:])
    (ran,) = runs(ledger)
    assert (ran.id, ran.payload["n"]) == (last.id, 99)
    assert ran.start >= last.run_at, "the debounced task ran before its period was over"


async def test_a_pause_holds_every_task_and_a_resume_runs_each_once(
    start: Callable[..., Proc], platform: Platform, ledger: Path
) -> None:
    flow = FlowService(platform)
    assert await flow.pause(SUBJECT)
    cluster = await started(start, ledger)
    begun = time.time()
    requests = [request(n, delay=1.0 if n % 5 == 0 else None) for n in range(50)]
    published = await publish(platform, requests)
    ids = [p.id for p in published]

    async def all_held() -> bool:  # each was offered to a worker and handed back
        return (await flow.status()).waiting.get(PAUSE_PREFIX + SUBJECT) == 50

    await eventually(all_held, 30, "the pause holds all 50 tasks", *cluster.procs)
    await asyncio.sleep(max(0.0, begun + 3.0 - time.time()))  # nothing may run meanwhile
    assert runs(ledger) == [], "a task ran while its subject was paused"
    assert {r.state for r in await records(platform, ids)} == {State.SCHEDULED}

    # The scheduler's flow sweep may wake some of them first, once the pause is gone:
    # the resume wakes the rest, and every one of them must run once below.
    assert 0 <= await flow.resume(SUBJECT) <= 50
    await wait_finished(platform, ids, 30, *cluster.procs)
    assert_succeeded_first_time(await records(platform, ids))
    found = runs(ledger)
    assert_ran_once_each(found, ids)
    due = {p.id: p.run_at for p in published}
    early = [run for run in found if run.start < due[run.id]]
    assert not early, f"{len(early)} delayed tasks ran before their run_at"
