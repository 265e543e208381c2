"""The memory flow ledger's state does not grow with the number of keys: slots given back
or left by dead holders, buckets and windows at rest, and fair groups whose waiters all
left, leave nothing behind."""

from __future__ import annotations

from atp.core.flow.rules import Bucket, Gates, Slot, Window
from atp.core.ports import Admission, Held, Verdict, Wait
from atp.plugins.memory._ledger import MemoryLedger

NOW = 1_800_000_000.0
RESERVE = 30.0  # how long a woken waiter holds its slot before its admit
KEYS = 1000


def gates_of(key: int, concurrency: int = 2) -> Gates:
    """A slot, a bucket and a window of their own for one key, as a per-key rule gives."""
    name = f"k:customer:{key}"
    return Gates((Slot(name, concurrency),), (Bucket(name, 1.0, 1),), (Window(name, 1, 10.0),))


def state(ledger: MemoryLedger) -> dict[str, int]:
    """How many entries each of the ledger's per-name dicts holds."""
    return {
        "limits": len(ledger._slot_limits),
        "holders": len(ledger._holders),
        "buckets": len(ledger._buckets),
        "windows": len(ledger._windows),
        "waiting": len(ledger._waiting),
    }


EMPTY = dict.fromkeys(("limits", "holders", "buckets", "windows", "waiting"), 0)


async def test_keys_admitted_and_released_leave_nothing_once_swept() -> None:
    ledger = MemoryLedger()
    requests = [Admission(f"t{key}", gates_of(key), NOW + 30) for key in range(KEYS)]
    assert await ledger.admit(requests, now=NOW) == [Verdict(True)] * KEYS
    held = [Held(r.task_id, tuple(s.name for s in r.gates.slots)) for r in requests]
    assert await ledger.release_slots(held, now=NOW + 1, reserve=RESERVE) == []
    assert state(ledger) == {**EMPTY, "buckets": KEYS, "windows": KEYS}, (
        "a slot given back with nobody waiting is forgotten at once"
    )
    assert await ledger.wake_ready(now=NOW + 11, limit=100, reserve=RESERVE) == []
    assert state(ledger) == EMPTY


async def test_slots_of_dead_holders_and_of_refused_tasks_go_at_the_sweep() -> None:
    ledger = MemoryLedger()
    dead = [Admission(f"d{key}", gates_of(key), NOW + 5) for key in range(KEYS)]
    assert await ledger.admit(dead, now=NOW) == [Verdict(True)] * KEYS
    refused = [Admission(f"r{key}", gates_of(key), NOW + 5) for key in range(KEYS)]
    verdicts = await ledger.admit(refused, now=NOW + 6)
    assert all(v.retry_at is not None for v in verdicts), "the buckets refuse, no slot is taken"
    assert await ledger.wake_ready(now=NOW + 30, limit=100, reserve=RESERVE) == []
    assert state(ledger) == EMPTY


async def test_the_sweep_keeps_what_still_matters() -> None:
    ledger = MemoryLedger()
    gates = gates_of(1, concurrency=1)
    [name] = [slot.name for slot in gates.slots]
    assert await ledger.admit([Admission("a", gates, NOW + 30)], now=NOW) == [Verdict(True)]
    assert await ledger.park([Wait(name, "w")], now=NOW, reserve=RESERVE) == []
    assert await ledger.wake_ready(now=NOW + 0.5, limit=100, reserve=RESERVE) == []
    assert state(ledger) == dict.fromkeys(EMPTY, 1), "a held slot, a bucket whose tat is ahead"
    metered = Gates(buckets=gates.buckets, windows=gates.windows)
    assert await ledger.wake_ready(now=NOW + 2, limit=100, reserve=RESERVE) == []
    assert state(ledger) == {**dict.fromkeys(EMPTY, 1), "buckets": 0}, "the bucket came to rest"
    [later] = await ledger.admit([Admission("c", metered, NOW + 30)], now=NOW + 2)
    assert later == Verdict(False, retry_at=NOW + 10), "the window kept its time in the period"


async def test_groups_whose_waiters_all_left_leave_nothing() -> None:
    ledger = MemoryLedger()
    name = "p:orders.a"
    waits = [Wait(name, f"t{n}", f"tenant:{n % 100}", 1 + n % 3, float(n)) for n in range(KEYS)]
    assert await ledger.park(waits, now=NOW, reserve=RESERVE) == []
    assert len(ledger._waiting[name].groups) == 100
    assert len(await ledger.unpark([name], limit=KEYS - 1)) == KEYS - 1
    assert list(ledger._waiting[name].groups) == ["tenant:99"], "the emptied groups went"
    assert await ledger.unpark([name], limit=KEYS) == ["t999"]
    assert state(ledger) == EMPTY


async def test_a_task_moved_to_another_group_leaves_no_empty_group_behind() -> None:
    ledger = MemoryLedger()
    name = "p:orders.a"
    assert (
        await ledger.park([Wait(name, "x", "a"), Wait(name, "y", "b")], now=NOW, reserve=RESERVE)
        == []
    )
    assert await ledger.park([Wait(name, "x", "b", rank=-1.0)], now=NOW, reserve=RESERVE) == []
    waiting = ledger._waiting[name]
    assert (list(waiting.groups), len(waiting)) == (["b"], 2)
    assert await ledger.unpark([name], limit=10) == ["x", "y"]
    assert state(ledger) == EMPTY


async def test_reserves_are_live_holders_until_they_run_out_then_leave_nothing() -> None:
    ledger = MemoryLedger()
    holders = [Admission(f"h{key}", gates_of(key, concurrency=1), NOW + 60) for key in range(KEYS)]
    assert await ledger.admit(holders, now=NOW) == [Verdict(True)] * KEYS
    waits = [Wait(f"k:customer:{key}", f"w{key}") for key in range(KEYS)]
    assert await ledger.park(waits, now=NOW, reserve=RESERVE) == []
    held = [Held(r.task_id, tuple(s.name for s in r.gates.slots)) for r in holders]
    woken = await ledger.release_slots(held, now=NOW + 1, reserve=RESERVE)
    assert sorted(woken) == sorted(wait.task_id for wait in waits)
    assert await ledger.wake_ready(now=NOW + RESERVE, limit=100, reserve=RESERVE) == []
    assert state(ledger) == {**EMPTY, "limits": KEYS, "holders": KEYS}, (
        "a reserve is a live holder: the sweep keeps its slot and the slot's limit"
    )
    assert await ledger.wake_ready(now=NOW + 1 + RESERVE, limit=100, reserve=RESERVE) == []
    assert state(ledger) == EMPTY, "reserves never taken up leave nothing once run out"
