"""The SQLite flow ledger across connections: stores opened on one file, as the workers
of one machine open it, share one set of slots and buckets (ADR 0038) and one wake order
(ADR 0039). And its tables do not grow with the number of keys: what is given back, dead
or at rest is deleted, and a waiter list's stride state goes with its last waiter."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from atp.core.flow.rules import Bucket, Gates, Slot, Window
from atp.core.ports import Admission, Held, Verdict, Wait
from atp.plugins.sqlite import SqliteStore

NOW = 1_800_000_000.0
RESERVE = 30.0  # how long a woken waiter holds its slot before its admit
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
        parked = await stores[0].park([Wait("s:orders.*", "late")], now=NOW, reserve=RESERVE)
        woken = await stores[1].release_slots(
            [Held(admitted[0], ("s:orders.*",))], now=NOW, reserve=RESERVE
        )
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
        assert await store.release_slots(held, now=NOW + 1, reserve=RESERVE) == []
        given_back = rows(path)
        assert await store.wake_ready(now=NOW + 11, limit=100, reserve=RESERVE) == []
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
        assert await store.wake_ready(now=NOW + 30, limit=100, reserve=RESERVE) == []
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
        assert await store.park([Wait(name, "w")], now=NOW, reserve=RESERVE) == []
        assert await store.wake_ready(now=NOW + 0.5, limit=100, reserve=RESERVE) == []
        early = rows(path)
        assert await store.wake_ready(now=NOW + 2, limit=100, reserve=RESERVE) == []
        later = rows(path)
        [verdict] = await store.admit([Admission("c", metered, NOW + 30)], now=NOW + 2)
    finally:
        await store.close()
    assert early == dict.fromkeys(STATE, 1), "a held slot, a bucket whose tat is ahead"
    assert later == {**dict.fromkeys(STATE, 1), "flow_buckets": 0}, "the bucket came to rest"
    assert verdict == Verdict(False, retry_at=NOW + 10), "the window kept its time in the period"


WAKE_STATE = ("flow_waiters", "flow_lists", "flow_groups")


def wake_rows(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in WAKE_STATE
        }


async def test_stores_on_one_file_share_the_wake_order(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    url = f"sqlite:///{path}"
    stores = [SqliteStore.from_url(url) for _ in range(STORES)]
    slot = Slot("s:orders.*", 1)
    gates = Gates(slots=(slot,))
    holder = "holder"
    woken: list[str] = []
    try:
        await stores[0].admit([Admission(holder, gates, NOW + 60)], now=NOW)
        for n, group in enumerate(("heavy", "light")):
            weight = 3 if group == "heavy" else 1
            waits = [Wait(slot.name, f"{group}-{i:02}", group, weight, float(i)) for i in range(8)]
            await stores[n].park(waits, now=NOW, reserve=RESERVE)
        for turn in range(8):  # each release through another connection than the last
            [task_id] = await stores[turn % STORES].release_slots(
                [Held(holder, (slot.name,))], now=NOW, reserve=RESERVE
            )
            woken.append(task_id)
            holder = task_id
            await stores[(turn + 1) % STORES].admit([Admission(holder, gates, NOW + 60)], now=NOW)
        during = wake_rows(path)
        rest = await stores[0].unpark([slot.name], limit=100)
        after = wake_rows(path)
    finally:
        for store in stores:
            await store.close()
    assert [t.split("-")[0] for t in woken].count("heavy") == 6, "weight 3 to 1 over 8 wakes"
    assert [t for t in woken if t.startswith("heavy")] == [f"heavy-{i:02}" for i in range(6)]
    assert during == {"flow_waiters": 8, "flow_lists": 1, "flow_groups": 2}
    assert len(rest) == 8
    assert after == dict.fromkeys(WAKE_STATE, 0), "an emptied list forgets its time and passes"


async def test_a_thousand_lists_woken_leave_no_wake_state(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(f"sqlite:///{path}")
    names = [f"k:customer:{key}" for key in range(KEYS)]
    waits = [Wait(name, f"t{n}-{g}", g, 2, 0.0) for n, name in enumerate(names) for g in "ab"]
    try:
        parked = await store.park(waits, now=NOW, reserve=RESERVE)
        left = wake_rows(path)
        lapsed = NOW + RESERVE  # the reserves of those woken at park ran out unused
        swept = await store.wake_ready(now=lapsed, limit=10 * KEYS, reserve=RESERVE)
        after = wake_rows(path)
    finally:
        await store.close()
    assert len(parked) == KEYS, "room 1 on each slot nobody holds"
    assert left == {"flow_waiters": KEYS, "flow_lists": KEYS, "flow_groups": KEYS}
    assert len(swept) == KEYS, "each reserve ran out: room 1 again"
    assert after == dict.fromkeys(WAKE_STATE, 0)


async def test_the_sweep_and_unpark_serve_the_most_overdue_list_first(tmp_path: Path) -> None:
    """Across lists, the one whose next waiter (in its wake order) ranks lowest goes first,
    as on Redis: the sweep by slot, ``unpark`` waiter by waiter."""
    store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'atp.db'}")
    slots = [Slot(f"s:orders.{n}", 1) for n in range(3)]
    pauses = [f"p:orders.{n}" for n in range(2)]
    try:
        for slot in slots:
            await store.admit([Admission(f"h-{slot.name}", Gates(slots=(slot,)), NOW + 1)], now=NOW)
        # Slot 1's next waiter is z (group "", rank 2 is its group's lowest): lower than 0's y.
        waits = [Wait(slots[0].name, "y", "", 1, 5.0), Wait(slots[1].name, "z", "", 1, 2.0)]
        waits += [Wait(slots[1].name, "a", "late", 1, 0.0), Wait(slots[2].name, "x", "", 1, 9.0)]
        await store.park(waits, now=NOW, reserve=RESERVE)
        swept = await store.wake_ready(now=NOW + 2, limit=2, reserve=RESERVE)
        held = [Wait(pauses[0], "p1", "", 1, 1.0), Wait(pauses[0], "p3", "", 1, 3.0)]
        held += [Wait(pauses[1], "p2", "", 1, 2.0), Wait(pauses[1], "p4", "", 1, 4.0)]
        await store.park(held, now=NOW, reserve=RESERVE)
        unparked = await store.unpark(pauses, limit=3)
    finally:
        await store.close()
    assert swept == ["z", "y"], "slot 1 (next: z, rank 2), then slot 0 (y, rank 5); x waits"
    assert unparked == ["p1", "p2", "p3"]
