"""The FlowLedger conformance suite: every guarantee of ``atp.core.ports.FlowLedger``.

Subclass it under a ``Test`` name and provide a ``ledger`` fixture: a store object that
is both a FlowLedger and a TaskStore (``wake`` moves the store's tasks)::

    class TestMyLedger(FlowLedgerConformance):
        @pytest.fixture
        async def ledger(self, clock):
            store = make_my_store(clock)   # a fresh, EMPTY store
            yield store
            await store.close()

The ledger must be fresh at the start of each test: ``wake_ready`` and ``waiters`` see
every list and ``rules_version`` starts at 0. On a shared server, give each test its own
key prefix, schema or database. Slot and list names come from ``unique()`` all the same.

A ledger forgets the limit of a slot with neither holders nor waiters, so the checks of
a slot whose limit is gone but which still has a live holder (a lost write, an evicted
key) need ``forget_slot_limit``: override it to drop a slot's remembered limit behind
the port's back; by default those checks are skipped.

Time: every FlowLedger method takes its times as arguments, so this suite never waits.
Its times are offsets from ``clock.now()``. Bucket and window answers are compared with
``atp.core.flow.meter`` run over the same requests, from a new budget's state (``tat`` 0,
``queue`` 0, no admission times). The wake order is compared with ``WakeOrder``, a plain
model of the FlowLedger docstring, with weights whose passes add up exactly in floats.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from atp.core.flow.rules import (
    PRIORITY_AGEING,
    Bucket,
    Gates,
    Limit,
    Rate,
    Rules,
    Slot,
    Window,
    pause_waiters,
    rank,
)
from atp.core.model import State
from atp.core.ports import Admission, Clock, FlowLedger, Held, TaskStore, Verdict, Wait
from atp.sdk.conformance._flow_support import (
    RESERVE,
    TIME,
    Ledger,
    Meter,
    WakeOrder,
    admit_one,
    ask,
    fill,
    group_of,
    groups_of,
    line_up,
    queue_up,
    random_wait,
    same_verdicts,
    sweep_turns,
    take_turns,
)
from atp.sdk.conformance._store_support import (
    LEASE,
    WINDOW,
    get_one,
    make_in_state,
    make_ready,
    make_running,
)
from atp.sdk.conformance._support import PortSuite, make_task, missing_fixture, unique

__all__ = ["FlowLedgerConformance"]


class FlowLedgerConformance(PortSuite):
    """Checks a FlowLedger (on a TaskStore) against the contract in ``atp.core.ports``."""

    @pytest.fixture
    def ledger(self, clock: Clock) -> Ledger:
        """Override: a fresh store, a FlowLedger and a TaskStore, built with ``clock``."""
        missing_fixture(self, "ledger")

    @pytest.fixture
    def subject(self) -> str:
        """A subject no other test uses."""
        return f"{unique('flow')}.work"

    async def forget_slot_limit(self, ledger: Ledger, name: str) -> None:
        """Override: make ``ledger`` forget slot ``name``'s limit and keep its holders, as
        a lost write would; the port offers no way to. Skips the calling test."""
        pytest.skip(f"{type(self).__name__} cannot make a ledger forget a slot's limit")

    async def test_implements_the_protocol(self, ledger: Ledger) -> None:
        assert isinstance(ledger, FlowLedger)
        assert isinstance(ledger, TaskStore)

    async def test_empty_batches_do_nothing(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        assert await ledger.admit([], now=now) == []
        await ledger.extend([], until=now)
        assert await ledger.release_slots([], now=now, reserve=RESERVE) == []
        assert await ledger.park([], now=now, reserve=RESERVE) == []
        assert await ledger.unpark([], limit=10) == []
        assert await ledger.wake([], now=now) == 0
        assert await ledger.waiters() == {}
        assert await ledger.wake_ready(now=now, limit=10, reserve=RESERVE) == []

    # -- slots -----------------------------------------------------------------------------

    async def test_a_slot_admits_up_to_its_limit_in_request_order(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 2)
        tasks = [unique("task") for _ in range(3)]
        verdicts = await ledger.admit([ask(t, now, slots=[slot]) for t in tasks], now=now)
        assert verdicts == [Verdict(True), Verdict(True), Verdict(False, wait_for=slot.name)]

    async def test_a_full_slot_refuses_taking_no_other_slot(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        free, full = Slot(unique("slot"), 1), Slot(unique("slot"), 1)
        await fill(ledger, full, now)
        refused = await admit_one(ledger, ask(unique("task"), now, slots=[free, full]), now)
        assert refused == Verdict(False, wait_for=full.name)
        other = await admit_one(ledger, ask(unique("task"), now, slots=[free]), now)
        assert other.admitted, "a refused task must not keep the slots it passed"

    async def test_a_full_slot_refuses_spending_no_bucket_or_window(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        full = Slot(unique("slot"), 1)
        bucket, window = Bucket(unique("bucket"), 1.0, 1), Window(unique("window"), 1, 60.0)
        await fill(ledger, full, now)
        gated = ask(unique("task"), now, slots=[full], buckets=[bucket], windows=[window])
        assert await admit_one(ledger, gated, now) == Verdict(False, wait_for=full.name)
        ungated = ask(unique("task"), now, buckets=[bucket], windows=[window])
        other = await admit_one(ledger, ungated, now)
        assert other == Verdict(True), "a slot refusal must leave buckets and windows untouched"

    async def test_a_bucket_refusal_takes_no_slot(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        slot, bucket = Slot(unique("slot"), 1), Bucket(unique("bucket"), 1.0, 1)
        assert (await admit_one(ledger, ask(unique("task"), now, buckets=[bucket]), now)).admitted
        refused = await admit_one(
            ledger, ask(unique("task"), now, slots=[slot], buckets=[bucket]), now
        )
        assert not refused.admitted
        assert refused.wait_for is None
        assert refused.retry_at == pytest.approx(now + 1.0, abs=TIME)
        assert (await admit_one(ledger, ask(unique("task"), now, slots=[slot]), now)).admitted

    async def test_a_task_admitted_again_keeps_its_one_place(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 2)
        task = unique("task")
        for _ in range(3):
            assert (await admit_one(ledger, ask(task, now, slots=[slot]), now)).admitted
        second, third = unique("task"), unique("task")
        assert (await admit_one(ledger, ask(second, now, slots=[slot]), now)).admitted
        refused = await admit_one(ledger, ask(third, now, slots=[slot]), now)
        assert refused == Verdict(False, wait_for=slot.name)

    async def test_a_holder_is_admitted_again_into_its_full_slot(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        assert await admit_one(ledger, ask(holder, now + 1, slots=[slot]), now + 1) == Verdict(True)

    async def test_a_holder_past_its_until_no_longer_counts(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        await fill(ledger, slot, now, lease=10.0)
        early = await admit_one(ledger, ask(unique("task"), now + 9, slots=[slot]), now + 9)
        assert early == Verdict(False, wait_for=slot.name)
        late = await admit_one(ledger, ask(unique("task"), now + 11, slots=[slot]), now + 11)
        assert late == Verdict(True), "an expired holder must give its place back by itself"

    async def test_a_raised_limit_is_remembered_for_release(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        waiting = await queue_up(ledger, slot.name, now, 3)
        wider = Slot(slot.name, 3)
        assert (await admit_one(ledger, ask(unique("task"), now, slots=[wider]), now)).admitted
        woken = await ledger.release_slots(
            [Held(holder, (slot.name,))], now=now + 1, reserve=RESERVE
        )
        assert woken == waiting[:2], "room is the latest limit (3) minus the one live holder"

    async def test_a_lowered_limit_is_remembered_even_from_a_refused_request(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 2)
        first, second = await fill(ledger, slot, now)
        narrower = Slot(slot.name, 1)
        refused = await admit_one(ledger, ask(unique("task"), now, slots=[narrower]), now)
        assert refused == Verdict(False, wait_for=slot.name)
        waiting = await queue_up(ledger, slot.name, now, 2)
        assert (
            await ledger.release_slots([Held(first, (slot.name,))], now=now, reserve=RESERVE) == []
        )
        assert (
            await ledger.release_slots([Held(second, (slot.name,))], now=now, reserve=RESERVE)
            == waiting[:1]
        )

    async def test_extend_keeps_a_holder_past_its_old_until(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot, spare = Slot(unique("slot"), 1), Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now, lease=10.0)
        await ledger.extend([Held(holder, (slot.name, spare.name))], until=now + 100)
        later = now + 50
        refused = await admit_one(ledger, ask(unique("task"), later, slots=[slot]), later)
        assert refused == Verdict(False, wait_for=slot.name)
        other = await admit_one(ledger, ask(unique("task"), later, slots=[spare]), later)
        assert other.admitted, "extend must not take a slot the task did not hold"
        gone = now + 101
        assert (await admit_one(ledger, ask(unique("task"), gone, slots=[slot]), gone)).admitted

    # -- buckets and windows -----------------------------------------------------------------

    async def test_a_bucket_admits_its_burst_then_spaces_retries_at_its_rate(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        bucket = Bucket(unique("bucket"), 2.0, 3)
        requests = [ask(unique("task"), now, buckets=[bucket]) for _ in range(6)]
        verdicts = await ledger.admit(requests, now=now)
        assert [v.admitted for v in verdicts] == [True] * 3 + [False] * 3
        retries = [v.retry_at for v in verdicts[3:]]
        assert retries == pytest.approx([now + 0.5, now + 1.0, now + 1.5], abs=TIME)
        for retry_at, request in zip(retries, requests[3:], strict=True):
            assert retry_at is not None
            assert await admit_one(ledger, request, retry_at) == Verdict(True)

    async def test_a_window_admits_its_count_then_waits_for_the_oldest_to_leave(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        window = Window(unique("window"), 2, 10.0)
        early = [ask(unique("task"), now + step, windows=[window]) for step in (0, 1)]
        for step, request in enumerate(early):
            assert await admit_one(ledger, request, now + step) == Verdict(True)
        refused = await ledger.admit(
            [ask(unique("task"), now + 2, windows=[window])] * 2, now=now + 2
        )
        assert [v.retry_at for v in refused] == pytest.approx([now + 10, now + 15], abs=TIME)
        assert not any(v.admitted for v in refused)
        back = await admit_one(ledger, ask(unique("task"), now + 10, windows=[window]), now + 10)
        assert back == Verdict(True)

    async def test_the_retry_is_the_latest_refusal_and_a_refusal_takes_nothing(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        bucket, window = Bucket(unique("bucket"), 2.0, 1), Window(unique("window"), 1, 10.0)
        slot = Slot(unique("slot"), 1)
        assert (await admit_one(ledger, ask(unique("task"), now, buckets=[bucket]), now)).admitted
        assert (await admit_one(ledger, ask(unique("task"), now, windows=[window]), now)).admitted
        both = ask(unique("task"), now, slots=[slot], buckets=[bucket], windows=[window])
        refused = await admit_one(ledger, both, now)
        assert not refused.admitted
        assert refused.wait_for is None
        assert refused.retry_at == pytest.approx(now + 10, abs=TIME)
        assert (await admit_one(ledger, ask(unique("task"), now, slots=[slot]), now)).admitted

    async def test_a_bucket_refusal_spends_no_window_and_a_window_refusal_no_bucket(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        spent_bucket, bucket = Bucket(unique("bucket"), 1.0, 1), Bucket(unique("bucket"), 1.0, 1)
        spent_window, window = Window(unique("window"), 1, 60.0), Window(unique("window"), 1, 60.0)
        first = ask(unique("task"), now, buckets=[spent_bucket], windows=[spent_window])
        assert await admit_one(ledger, first, now) == Verdict(True)
        for pair in ((spent_bucket, window), (bucket, spent_window)):
            request = ask(unique("task"), now, buckets=[pair[0]], windows=[pair[1]])
            assert not (await admit_one(ledger, request, now)).admitted
        verdict = await admit_one(ledger, ask(unique("task"), now, windows=[window]), now)
        assert verdict == Verdict(True), "a bucket refusal must not spend the task's window"
        verdict = await admit_one(ledger, ask(unique("task"), now, buckets=[bucket]), now)
        assert verdict == Verdict(True), "a window refusal must not spend the task's bucket"

    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_buckets_and_windows_answer_as_the_meter_does(
        self, ledger: Ledger, clock: Clock, seed: int
    ) -> None:
        start = clock.now()
        buckets = [Bucket(unique("bucket"), 2.0, 3), Bucket(unique("bucket"), 0.5, 1)]
        windows = [Window(unique("window"), 3, 4.0)]
        chance = random.Random(seed)
        meter, now = Meter(), start
        for _ in range(60):
            now += chance.choice([0.0, 0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            if chance.random() < 0.3:
                # The sweep may drop a budget at rest: it must answer as before all the same.
                assert await ledger.wake_ready(now=now, limit=10, reserve=RESERVE) == []
            gates = Gates(
                buckets=tuple(b for b in buckets if chance.random() < 0.7),
                windows=tuple(w for w in windows if chance.random() < 0.5),
            )
            requests = [Admission(unique("task"), gates, now + LEASE)] * chance.randint(1, 3)
            expected = [meter.admit(gates, now) for _ in requests]
            got = await ledger.admit(requests, now=now)
            assert same_verdicts(got, expected), f"at +{now - start:g}s: {got} != {expected}"

    # -- release, park and waking ------------------------------------------------------------

    async def test_release_wakes_as_many_waiters_as_there_is_room_lowest_id_first(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 2)
        holders = await fill(ledger, slot, now)
        waiting = await queue_up(ledger, slot.name, now, 4)
        woken = await ledger.release_slots(
            [Held(t, (slot.name,)) for t in holders], now=now + 1, reserve=RESERVE
        )
        assert woken == waiting[:2]
        assert (await ledger.waiters()).get(slot.name) == 2
        stranger = await admit_one(ledger, ask(unique("task"), now + 1, slots=[slot]), now + 1)
        assert stranger == Verdict(False, wait_for=slot.name), "the woken hold the room"
        for task in woken:
            assert (await admit_one(ledger, ask(task, now + 1, slots=[slot]), now + 1)).admitted

    async def test_release_wakes_the_waiters_of_every_slot_given_back(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        one, two = Slot(unique("slot"), 1), Slot(unique("slot"), 1)
        task = unique("task")
        assert (await admit_one(ledger, ask(task, now, slots=[one, two]), now)).admitted
        first = await queue_up(ledger, one.name, now, 2)
        second = await queue_up(ledger, two.name, now, 2)
        woken = await ledger.release_slots(
            [Held(task, (one.name, two.name))], now=now, reserve=RESERVE
        )
        assert sorted(woken) == sorted([first[0], second[0]])

    async def test_release_of_a_slot_not_held_wakes_only_for_room(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        await fill(ledger, slot, now)
        await queue_up(ledger, slot.name, now, 1)
        stranger = Held(unique("task"), (slot.name, unique("slot")))
        assert await ledger.release_slots([stranger], now=now, reserve=RESERVE) == []
        assert (await ledger.waiters()).get(slot.name) == 1

    async def test_park_wakes_at_once_when_the_slot_has_room(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        assert (
            await ledger.release_slots([Held(holder, (slot.name,))], now=now, reserve=RESERVE) == []
        )
        late = unique("task")
        assert await ledger.park([Wait(slot.name, late)], now=now, reserve=RESERVE) == [late]
        assert slot.name not in await ledger.waiters()

    async def test_a_slot_given_back_with_nobody_waiting_wakes_a_later_waiter_at_once(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 3)
        holder = unique("task")
        assert (await admit_one(ledger, ask(holder, now, slots=[slot]), now)).admitted
        assert (
            await ledger.release_slots([Held(holder, (slot.name,))], now=now + 1, reserve=RESERVE)
            == []
        )
        assert await ledger.wake_ready(now=now + 2, limit=10, reserve=RESERVE) == []
        late = unique("task")
        assert await ledger.park([Wait(slot.name, late)], now=now + 3, reserve=RESERVE) == [late], (
            "a slot whose limit was forgotten has room while nobody holds it"
        )
        assert await ledger.waiters() == {}

    async def test_a_slot_whose_holder_died_wakes_a_later_waiter_at_once(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 2)
        await fill(ledger, slot, now, lease=10.0)
        assert await ledger.wake_ready(now=now + 20, limit=10, reserve=RESERVE) == []
        late = unique("task")
        assert await ledger.park([Wait(slot.name, late)], now=now + 21, reserve=RESERVE) == [late]

    async def test_a_waiter_of_a_slot_never_admitted_to_is_woken_at_once(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        name, task = unique("slot"), unique("task")
        assert await ledger.park([Wait(name, task)], now=now, reserve=RESERVE) == [task], (
            "no limit known and no holder: room 1"
        )

    async def test_a_slot_with_no_limit_and_a_live_holder_wakes_no_waiter(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 3)
        holder, *others = await fill(ledger, slot, now)
        released = [Held(t, (slot.name,)) for t in others]
        assert await ledger.release_slots(released, now=now, reserve=RESERVE) == []
        await self.forget_slot_limit(ledger, slot.name)
        waiting = await queue_up(ledger, slot.name, now, 2)
        assert await ledger.wake_ready(now=now + 1, limit=10, reserve=RESERVE) == [], (
            "a limit not remembered counts as 1: the live holder takes it"
        )
        assert await ledger.release_slots(
            [Held(holder, (slot.name,))], now=now + 1, reserve=RESERVE
        ) == [waiting[0]], "with the holder gone, room 1"

    async def test_a_pause_list_is_woken_by_unpark_alone(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        name = pause_waiters(subject)
        [task] = await queue_up(ledger, name, now, 1)
        assert await ledger.wake_ready(now=now, limit=10, reserve=RESERVE) == [], (
            "a pause list has no room"
        )
        assert (
            await ledger.release_slots([Held(unique("task"), (name,))], now=now, reserve=RESERVE)
            == []
        )
        assert await ledger.waiters() == {name: 1}
        assert await ledger.unpark([name], limit=10) == [task]

    async def test_a_waiter_parked_again_comes_out_first_by_its_id(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        first, second = await queue_up(ledger, slot.name, now, 2)
        given_back = [Held(holder, (slot.name,))]
        assert await ledger.release_slots(given_back, now=now, reserve=1.0) == [first]
        later = now + 2  # first never came: its reserve ran out
        [holder] = await fill(ledger, slot, later)
        assert await ledger.park([Wait(slot.name, first)], now=later, reserve=RESERVE) == []
        given_back = [Held(holder, (slot.name,))]
        assert await ledger.release_slots(given_back, now=later, reserve=RESERVE) == [first]
        assert (await ledger.waiters()).get(slot.name) == 1
        after = later + RESERVE + 1
        assert await ledger.wake_ready(now=after, limit=10, reserve=RESERVE) == [second]

    async def test_park_keeps_a_task_in_a_list_once(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        await fill(ledger, slot, now)
        task = unique("task")
        assert (
            await ledger.park(
                [Wait(slot.name, task), Wait(slot.name, task)], now=now, reserve=RESERVE
            )
            == []
        )
        assert await ledger.park([Wait(slot.name, task)], now=now, reserve=RESERVE) == []
        assert (await ledger.waiters()).get(slot.name) == 1

    async def test_wake_ready_takes_waiters_where_holders_expired_up_to_the_limit(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slots = [Slot(unique("slot"), 1) for _ in range(3)]
        waiting: dict[str, list[str]] = {}
        for slot in slots[:2]:
            await fill(ledger, slot, now, lease=10.0)
            waiting[slot.name] = await queue_up(ledger, slot.name, now, 2)
        busy = slots[2]
        await fill(ledger, busy, now, lease=1000.0)
        waiting[busy.name] = await queue_up(ledger, busy.name, now, 1)
        assert await ledger.wake_ready(now=now + 5, limit=10, reserve=RESERVE) == []
        firsts = {waiting[slots[0].name][0]: slots[0], waiting[slots[1].name][0]: slots[1]}
        [woken] = await ledger.wake_ready(now=now + 20, limit=1, reserve=RESERVE)
        assert woken in firsts
        served, other = firsts[woken], next(s for w, s in firsts.items() if w != woken)
        rest = await ledger.wake_ready(now=now + 20, limit=10, reserve=RESERVE)
        assert rest == [waiting[other.name][0]], "a woken waiter holds its slot's one place"
        counts = await ledger.waiters()
        assert [counts.get(slot.name) for slot in (served, other, busy)] == [1, 1, 1]
        lapsed = now + 20 + RESERVE + 1
        last = await ledger.wake_ready(now=lapsed, limit=10, reserve=RESERVE)
        assert sorted(last) == sorted([waiting[served.name][1], waiting[other.name][1]]), (
            "reserves that were never taken up give their places back"
        )
        assert await ledger.waiters() == {busy.name: 1}

    # -- a woken waiter holds its slot -------------------------------------------------------

    async def test_a_woken_waiter_holds_its_slot_so_a_second_release_wakes_only_the_room_left(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 2)
        h1, h2 = await fill(ledger, slot, now)
        w1, w2, _, _ = await queue_up(ledger, slot.name, now, 4)
        assert await ledger.release_slots([Held(h1, (slot.name,))], now=now, reserve=RESERVE) == [
            w1
        ]
        assert await ledger.release_slots([Held(h2, (slot.name,))], now=now, reserve=RESERVE) == [
            w2
        ], "w1 holds the place h1 gave back: room 1, not 2"
        assert await ledger.wake_ready(now=now, limit=10, reserve=RESERVE) == []
        assert await admit_one(ledger, ask(w1, now, slots=[slot]), now) == Verdict(True), (
            "the woken task finds its place kept"
        )
        stranger = await admit_one(ledger, ask(unique("task"), now, slots=[slot]), now)
        assert stranger == Verdict(False, wait_for=slot.name)
        assert (await ledger.waiters()).get(slot.name) == 2

    async def test_a_reserve_not_taken_up_gives_the_place_back_when_it_runs_out(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        first, second, third = await queue_up(ledger, slot.name, now, 3)
        given_back = [Held(holder, (slot.name,))]
        assert await ledger.release_slots(given_back, now=now, reserve=10.0) == [first]
        assert await ledger.wake_ready(now=now + 9, limit=10, reserve=10.0) == []
        early = await admit_one(ledger, ask(unique("task"), now + 9, slots=[slot]), now + 9)
        assert early == Verdict(False, wait_for=slot.name), "the reserve is a live holder"
        assert await ledger.wake_ready(now=now + 11, limit=10, reserve=10.0) == [second], (
            "first never came: its place goes to the next waiter"
        )
        assert await admit_one(ledger, ask(first, now + 11, slots=[slot]), now + 11) == Verdict(
            False, wait_for=slot.name
        )
        await ledger.extend([Held(second, (slot.name,))], until=now + 100)
        assert await ledger.wake_ready(now=now + 50, limit=10, reserve=10.0) == [], (
            "a heartbeat extends a reserve as it does any holder's"
        )
        assert (await ledger.waiters()).get(slot.name) == 1
        assert await ledger.wake_ready(now=now + 101, limit=10, reserve=10.0) == [third]

    async def test_park_makes_the_waiters_it_wakes_holders(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        first, second = sorted(unique("task") for _ in range(2))
        waits = [Wait(slot.name, second), Wait(slot.name, first)]
        assert await ledger.park(waits, now=now, reserve=RESERVE) == [first]
        assert await ledger.park([Wait(slot.name, unique("task"))], now=now, reserve=RESERVE) == []
        assert await ledger.wake_ready(now=now + 1, limit=10, reserve=RESERVE) == []
        stranger = await admit_one(ledger, ask(unique("task"), now + 1, slots=[slot]), now + 1)
        assert stranger == Verdict(False, wait_for=slot.name)
        assert (await admit_one(ledger, ask(first, now + 1, slots=[slot]), now + 1)).admitted
        assert (await ledger.waiters()).get(slot.name) == 2

    async def test_unpark_and_pause_lists_make_no_holders(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        pause = pause_waiters(subject)
        [holder] = await fill(ledger, slot, now)
        [waiting] = await queue_up(ledger, slot.name, now, 1)
        [paused] = await queue_up(ledger, pause, now, 1)
        assert await ledger.wake_ready(now=now, limit=10, reserve=RESERVE) == []
        assert sorted(await ledger.unpark([slot.name, pause], limit=10)) == sorted(
            [waiting, paused]
        )
        given_back = [Held(holder, (slot.name,))]
        assert await ledger.release_slots(given_back, now=now, reserve=RESERVE) == []
        stranger = await admit_one(ledger, ask(unique("task"), now, slots=[slot]), now)
        assert stranger == Verdict(True), "an unparked task holds no place"

    async def test_pause_lists_give_the_lowest_id_first(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        name = pause_waiters(subject)
        held = await queue_up(ledger, name, now, 3)
        assert (await ledger.waiters()).get(name) == 3
        assert await ledger.unpark([name], limit=2) == held[:2]
        assert await ledger.unpark([name], limit=2) == held[2:]
        assert await ledger.unpark([name], limit=2) == []
        assert name not in await ledger.waiters()

    async def test_unpark_takes_at_most_limit_across_the_lists_named(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        lists = [pause_waiters(f"{unique('flow')}.work") for _ in range(3)]
        held = {name: await queue_up(ledger, name, now, 2) for name in lists}
        taken = await ledger.unpark(lists[:2], limit=3)
        assert len(taken) == 3
        assert len(set(taken)) == 3
        for name in lists[:2]:
            mine = [t for t in taken if t in held[name]]
            assert mine == held[name][: len(mine)], "each list gives its oldest first"
        counts = await ledger.waiters()
        assert sum(counts.get(name, 0) for name in lists[:2]) == 1
        assert counts.get(lists[2]) == 2

    async def test_waiters_counts_each_non_empty_list(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        await fill(ledger, slot, now)
        pause = pause_waiters(f"{unique('flow')}.work")
        await queue_up(ledger, slot.name, now, 2)
        await queue_up(ledger, pause, now, 1)
        assert await ledger.waiters() == {slot.name: 2, pause: 1}
        await ledger.unpark([pause], limit=5)
        assert await ledger.waiters() == {slot.name: 2}

    # -- wake order --------------------------------------------------------------------------

    async def test_groups_are_woken_in_proportion_to_their_weights(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        waits = [*group_of(slot.name, "a", 1, 60), *group_of(slot.name, "b", 2, 60)]
        waits += group_of(slot.name, "c", 3, 60)
        random.Random(7).shuffle(waits)
        await line_up(ledger, waits, now)
        woken, _ = await take_turns(ledger, slot, holder, 60, now)
        counts = Counter(groups_of(woken, waits))
        for group, share in (("a", 10), ("b", 20), ("c", 30)):
            assert abs(counts[group] - share) <= 1, f"weights 1:2:3 over 60 wakes: {counts}"

    async def test_a_group_that_starts_waiting_late_is_owed_no_turns(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        early = group_of(slot.name, "a", 1, 40)
        await line_up(ledger, early, now)
        _, holder = await take_turns(ledger, slot, holder, 30, now)
        late = group_of(slot.name, "b", 1, 20)
        await line_up(ledger, late, now)
        woken, _ = await take_turns(ledger, slot, holder, 10, now)
        assert groups_of(woken, [*early, *late]) == ["a", "b"] * 5, (
            "b starts at the list's time, the pass a reached (30): a tie, a's name first"
        )

    async def test_a_group_that_comes_back_is_owed_no_turns_either(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        waits = [*group_of(slot.name, "a", 1, 30), *group_of(slot.name, "b", 1, 2)]
        await line_up(ledger, waits, now)
        first, holder = await take_turns(ledger, slot, holder, 14, now)
        assert groups_of(first, waits) == ["a", "b", "a", "b", *["a"] * 10]
        back = group_of(slot.name, "b", 1, 5)
        await line_up(ledger, back, now)
        woken, _ = await take_turns(ledger, slot, holder, 6, now)
        assert groups_of(woken, [*waits, *back]) == ["a", "b"] * 3, (
            "a group whose last waiter left forgets its pass"
        )

    async def test_within_a_group_the_lowest_rank_comes_first_then_the_lowest_id(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        await fill(ledger, slot, now, lease=1.0)
        offsets = [5.0, -20.0, 5.0, 0.0, -20.0, 5.0, 0.25, 0.0, -1e-3]
        waits = [Wait(slot.name, unique("task"), "g", 1, now + offset) for offset in offsets]
        expected = [w.task_id for w in sorted(waits, key=lambda w: (w.rank, w.task_id))]
        random.Random(3).shuffle(waits)
        for wait in waits:
            await line_up(ledger, [wait], now)
        assert await sweep_turns(ledger, slot, len(waits), now) == expected

    async def test_a_task_parked_again_keeps_one_place_with_its_new_group_and_rank(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        a1, a2, a3, b1 = (unique("task") for _ in range(4))
        name = slot.name
        firsts = [Wait(name, a1, "a", 1, 1.0), Wait(name, a2, "a", 1, 2.0)]
        firsts += [Wait(name, a3, "a", 1, 3.0), Wait(name, b1, "b", 1, 1.0)]
        await line_up(ledger, firsts, now)
        await line_up(ledger, [Wait(name, a3, "a", 1, 0.0), Wait(name, a2, "b", 1, 0.0)], now)
        assert (await ledger.waiters()).get(name) == 4
        woken, _ = await take_turns(ledger, slot, holder, 4, now)
        assert woken == [a3, a2, a1, b1], "a: a3 (rank 0), b: a2 (rank 0), a: a1, b: b1"

    async def test_the_weight_of_a_group_is_the_one_its_latest_wait_gave(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        waits = [*group_of(slot.name, "a", 1, 10), *group_of(slot.name, "b", 1, 10)]
        await line_up(ledger, waits, now)
        heavier = group_of(slot.name, "b", 3, 1)
        await line_up(ledger, heavier, now)
        woken, _ = await take_turns(ledger, slot, holder, 8, now)
        assert Counter(groups_of(woken, [*waits, *heavier])) == {"a": 2, "b": 6}

    async def test_a_list_whose_waiters_all_left_forgets_its_time_and_passes(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        alone = group_of(slot.name, "a", 1, 30)
        await line_up(ledger, alone, now)
        _, holder = await take_turns(ledger, slot, holder, 30, now)
        assert slot.name not in await ledger.waiters()
        later = group_of(slot.name, "b", 1, 5)
        await line_up(ledger, later, now)
        again = group_of(slot.name, "a", 1, 5)
        await line_up(ledger, again, now)
        woken, _ = await take_turns(ledger, slot, holder, 10, now)
        assert groups_of(woken, [*later, *again]) == ["a", "b"] * 5, (
            "both groups start anew at the same pass: a's name first"
        )

    async def test_priority_ages_a_level_per_ageing_period(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        for head_start, first in ((10 * PRIORITY_AGEING, "low"), (4 * PRIORITY_AGEING, "high")):
            slot = Slot(unique("slot"), 1)
            [holder] = await fill(ledger, slot, now)
            tasks = {
                "low": make_task(subject, now - head_start, priority=0),
                "high": make_task(subject, now, priority=5),
            }
            waits = [Wait(slot.name, task.id, rank=rank(task)) for task in tasks.values()]
            await line_up(ledger, waits, now)
            woken, _ = await take_turns(ledger, slot, holder, 2, now)
            assert woken[0] == tasks[first].id, (
                f"priority 0 created {head_start:g} s before priority 5: {first} first"
            )

    async def test_park_wakes_at_once_in_wake_order(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 3)
        _, *others = await fill(ledger, slot, now)
        assert (
            await ledger.release_slots(
                [Held(t, (slot.name,)) for t in others], now=now, reserve=RESERVE
            )
            == []
        )
        ranked = [Wait(slot.name, unique("task"), "a", 1, at) for at in (3.0, 1.0, 2.0)]
        waits = [*ranked, *group_of(slot.name, "b", 1, 1)]
        woken = await ledger.park(waits, now=now, reserve=RESERVE)
        assert sorted(woken) == sorted([ranked[1].task_id, waits[3].task_id]), (
            "room 2: one turn each for a (its lowest rank) and b"
        )

    async def test_unpark_takes_a_list_in_wake_order(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        name = pause_waiters(subject)
        chance = random.Random(5)
        waits = [
            Wait(name, unique("task"), group, weight, float(chance.randint(0, 2)))
            for group, weight in (("a", 1), ("b", 2), ("", 1))
            for _ in range(5)
        ]
        order = WakeOrder()
        for wait in waits:
            order.park(wait)
        chance.shuffle(waits)
        await line_up(ledger, waits, now)
        expected = [order.take() for _ in waits]
        taken = [*await ledger.unpark([name], limit=1), *await ledger.unpark([name], limit=4)]
        taken += await ledger.unpark([name], limit=100)
        assert taken == expected

    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_the_wake_order_is_the_reference_one(
        self, ledger: Ledger, clock: Clock, seed: int
    ) -> None:
        """Random parks (new waiters, and waiters parked again with a new rank) and wakes,
        weights 1, 2 and 4 (their passes add up exactly), against ``WakeOrder``."""
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        chance, order = random.Random(seed), WakeOrder()
        for step in range(40):
            if order.waiting and (chance.random() < 0.4 or step == 20):
                count = len(order.waiting) if step == 20 else chance.randint(1, 3)
                count = min(count, len(order.waiting))
                expected = [order.take() for _ in range(count)]
                woken, holder = await take_turns(ledger, slot, holder, count, now)
                assert woken == expected, f"step {step}"
                continue
            waits = [random_wait(chance, slot.name, order) for _ in range(chance.randint(1, 4))]
            waits = list({wait.task_id: wait for wait in waits}.values())
            for wait in waits:
                order.park(wait)
            await line_up(ledger, waits, now)
            assert (await ledger.waiters()).get(slot.name) == len(order.waiting)

    # -- wake --------------------------------------------------------------------------------

    async def test_wake_makes_a_scheduled_task_due_now(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        task = make_task(subject, now, run_at=now + 3600)
        await ledger.create([task], now=now, idempotency_window=WINDOW)
        assert await ledger.take_due(now=now + 1, limit=10, ready_until=now + LEASE) == []
        assert await ledger.wake([task.id], now=now + 1) == 1
        record = await get_one(ledger, task.id)
        assert (record.state, record.task.run_at) == (State.SCHEDULED, now + 1)
        taken = await ledger.take_due(now=now + 1, limit=10, ready_until=now + LEASE)
        assert [t.id for t in taken] == [task.id]

    async def test_wake_leaves_every_other_task_untouched(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        ready = await make_ready(ledger, subject, now)
        running = await make_running(ledger, subject, now)
        due = await make_in_state(ledger, subject, now - 5, State.SCHEDULED)
        done = await make_in_state(ledger, subject, now, State.SUCCEEDED)
        later = make_task(subject, now, run_at=now + 60)
        await ledger.create([later], now=now, idempotency_window=WINDOW)
        others = [ready.id, running.id, due.id, done.id]
        before = await ledger.get(others)
        ids = [*others, unique("unknown"), later.id]
        assert await ledger.wake(ids, now=now) == 1
        assert await ledger.get(others) == before
        assert (await get_one(ledger, later.id)).task.run_at == now

    # -- rules -------------------------------------------------------------------------------

    async def test_a_fresh_ledger_has_no_rules_and_version_0(self, ledger: Ledger) -> None:
        assert await ledger.rules_version() == 0
        assert await ledger.rules() == Rules()

    async def test_put_limits_round_trips_every_field_sorted_by_name(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        target = unique("flow")
        limits = [
            Limit(f"{target}.*", concurrency=3, rate=Rate(10, 1.0), burst=5, updated_at=now),
            Limit(f"{target}:", key=True, window=Rate(100, 60.0), updated_at=now + 0.5),
            Limit("*", key=True, concurrency=2),
        ]
        await ledger.put_limits(limits)
        rules = await ledger.rules()
        assert rules.limits == tuple(sorted(limits, key=lambda limit: limit.name))
        assert rules.version == await ledger.rules_version() > 0

    async def test_put_limits_replaces_by_name(self, ledger: Ledger, clock: Clock) -> None:
        pattern = f"{unique('flow')}.>"
        await ledger.put_limits([Limit(pattern, concurrency=1)])
        await ledger.put_limits([Limit(pattern, rate=Rate(5, 1.0), updated_at=clock.now())])
        assert (await ledger.rules()).limits == (
            Limit(pattern, rate=Rate(5, 1.0), updated_at=clock.now()),
        )

    async def test_remove_limits_says_per_name_whether_it_existed(self, ledger: Ledger) -> None:
        kept, gone = (
            Limit(f"{unique('flow')}.*", concurrency=1),
            Limit("*", key=True, concurrency=4),
        )
        await ledger.put_limits([kept, gone])
        assert await ledger.remove_limits([gone.name, "subject:nothing.here"]) == [True, False]
        assert (await ledger.rules()).limits == (kept,)
        assert await ledger.remove_limits([gone.name]) == [False]

    async def test_set_paused_says_per_pattern_whether_it_changed_anything(
        self, ledger: Ledger
    ) -> None:
        one, two, three = (f"{unique('flow')}.*" for _ in range(3))
        assert await ledger.set_paused([two, one], True) == [True, True]
        assert await ledger.set_paused([one, three], True) == [False, True]
        assert (await ledger.rules()).pauses == tuple(sorted([one, two, three]))
        assert await ledger.set_paused([one, f"{unique('flow')}.*"], False) == [True, False]
        assert (await ledger.rules()).pauses == tuple(sorted([two, three]))

    async def test_the_version_grows_on_every_write(self, ledger: Ledger) -> None:
        pattern = f"{unique('flow')}.*"
        versions = [await ledger.rules_version()]
        await ledger.put_limits([Limit(pattern, concurrency=1)])
        versions.append(await ledger.rules_version())
        await ledger.put_limits([Limit(pattern, concurrency=2)])
        versions.append(await ledger.rules_version())
        await ledger.set_paused([pattern], True)
        versions.append(await ledger.rules_version())
        await ledger.set_paused([pattern], False)
        versions.append(await ledger.rules_version())
        await ledger.remove_limits([f"subject:{pattern}"])
        versions.append(await ledger.rules_version())
        assert versions == sorted(set(versions)), f"versions {versions} must grow on each write"
        assert (await ledger.rules()).version == versions[-1]
