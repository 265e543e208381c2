"""The SQLite flow ledger across connections: stores opened on one file, as the workers
of one machine open it, share one set of slots and buckets (ADR 0038). And its tables do
not grow with the number of keys: what is given back, dead or at rest is deleted."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from atp.core.flow.rules import Bucket, Gates, Slot, Window
from atp.core.ports import Admission, Held, Verdict
from atp.plugins.sqlite import SqliteStore

NOW = 1_800_000_000.0
STORES = 4
ASKS = 10
KEYS = 1000
STATE = ("flow_slot_limits", "flow_slots", "flow_buckets", "flow_windows", "flow_window_times")
"""The tables that would grow with the keys if nothing were deleted."""


async def test_stores_on_one_file_never_overfill_a_slot(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atp.db'}"
    stores = [SqliteStore.from_url(url) for _ in range(STORES)]
    gates = Gates(slots=(Slot("s:orders.*", 3),))

    async def ask(store: SqliteStore, worker: int) -> list[str]:
        admitted = []
        for n in range(ASKS):
            task_id = f"w{worker}-{n}"
            [verdict] = await store.admit([Admission(task_id, gates, NOW + 60)], now=NOW)
            if verdict.admitted:
                admitted.append(task_id)
        return admitted

    try:
        results = await asyncio.gather(*(ask(s, w) for w, s in enumerate(stores)))
        admitted = [task_id for result in results for task_id in result]
        assert len(admitted) == 3, "each admission is one transaction under the write lock"
        parked = await stores[0].park([("s:orders.*", "late")], now=NOW)
        woken = await stores[1].release_slots([Held(admitted[0], ("s:orders.*",))], now=NOW)
    finally:
        for store in stores:
            await store.close()
    assert parked == []
    assert woken == ["late"], "a slot freed through one connection wakes a waiter parked by another"


async def test_a_bucket_is_spent_once_across_stores_and_survives_reopening(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'atp.db'}"
    bucket = Gates(buckets=(Bucket("s:mail.*", 1.0, 2),))
    first, second = SqliteStore.from_url(url), SqliteStore.from_url(url)
    try:
        verdicts = [
            *await first.admit([Admission("a", bucket, NOW)], now=NOW),
            *await second.admit([Admission("b", bucket, NOW)], now=NOW),
        ]
    finally:
        await first.close()
        await second.close()
    reopened = SqliteStore.from_url(url)
    try:
        [third] = await reopened.admit([Admission("c", bucket, NOW)], now=NOW)
    finally:
        await reopened.close()
    assert [v.admitted for v in verdicts] == [True, True]
    assert not third.admitted
    assert third.retry_at == NOW + 1.0, "the burst of 2 was spent on disk, the next token in 1s"


def gates_of(key: int, concurrency: int = 2) -> Gates:
    """A slot, a bucket and a window of their own for one key, as a per-key rule gives."""
    name = f"k:customer:{key}"
    return Gates((Slot(name, concurrency),), (Bucket(name, 1.0, 1),), (Window(name, 1, 10.0),))


def rows(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in STATE
        }


EMPTY = dict.fromkeys(STATE, 0)


async def test_keys_admitted_and_released_leave_no_rows_once_swept(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    requests = [Admission(f"t{key}", gates_of(key), NOW + 30) for key in range(KEYS)]
    try:
        assert await store.admit(requests, now=NOW) == [Verdict(True)] * KEYS
        held = [Held(r.task_id, tuple(s.name for s in r.gates.slots)) for r in requests]
        assert await store.release_slots(held, now=NOW + 1) == []
        given_back = rows(path)
        assert await store.wake_ready(now=NOW + 11, limit=100) == []
        swept = rows(path)
    finally:
        await store.close()
    metered = {"flow_buckets": KEYS, "flow_windows": KEYS, "flow_window_times": KEYS}
    assert given_back == {**EMPTY, **metered}, "a slot given back, nobody waiting, is forgotten"
    assert swept == EMPTY


async def test_slots_of_dead_holders_and_of_refused_tasks_go_at_the_sweep(
    tmp_path: Path,
) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    try:
        dead = [Admission(f"d{key}", gates_of(key), NOW + 5) for key in range(KEYS)]
        assert await store.admit(dead, now=NOW) == [Verdict(True)] * KEYS
        refused = [Admission(f"r{key}", gates_of(key), NOW + 5) for key in range(KEYS)]
        verdicts = await store.admit(refused, now=NOW + 6)
        assert all(v.retry_at is not None for v in verdicts), "the buckets refuse: no slot taken"
        assert await store.wake_ready(now=NOW + 30, limit=100) == []
        swept = rows(path)
    finally:
        await store.close()
    assert swept == EMPTY


async def test_the_sweep_keeps_what_still_matters(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    gates = gates_of(1, concurrency=1)
    metered = Gates(buckets=gates.buckets, windows=gates.windows)
    [name] = [slot.name for slot in gates.slots]
    try:
        assert await store.admit([Admission("a", gates, NOW + 30)], now=NOW) == [Verdict(True)]
        assert await store.park([(name, "w")], now=NOW) == []
        assert await store.wake_ready(now=NOW + 0.5, limit=100) == []
        early = rows(path)
        assert await store.wake_ready(now=NOW + 2, limit=100) == []
        later = rows(path)
        [verdict] = await store.admit([Admission("c", metered, NOW + 30)], now=NOW + 2)
    finally:
        await store.close()
    assert early == dict.fromkeys(STATE, 1), "a held slot, a bucket whose tat is ahead"
    assert later == {**dict.fromkeys(STATE, 1), "flow_buckets": 0}, "the bucket came to rest"
    assert verdict == Verdict(False, retry_at=NOW + 10), "the window kept its time in the period"
