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
``queue`` 0, no admission times).
"""

from __future__ import annotations

import random

import pytest

from atp.core.flow.rules import Bucket, Gates, Limit, Rate, Rules, Slot, Window, pause_waiters
from atp.core.model import State
from atp.core.ports import Admission, Clock, FlowLedger, Held, TaskStore, Verdict
from atp.sdk.conformance._flow_support import (
    TIME,
    Ledger,
    Meter,
    admit_one,
    ask,
    fill,
    queue_up,
    same_verdicts,
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
        assert await ledger.release_slots([], now=now) == []
        assert await ledger.park([], now=now) == []
        assert await ledger.unpark([], limit=10) == []
        assert await ledger.wake([], now=now) == 0
        assert await ledger.waiters() == {}
        assert await ledger.wake_ready(now=now, limit=10) == []

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
        woken = await ledger.release_slots([Held(holder, (slot.name,))], now=now + 1)
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
        assert await ledger.release_slots([Held(first, (slot.name,))], now=now) == []
        assert await ledger.release_slots([Held(second, (slot.name,))], now=now) == waiting[:1]

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
                assert await ledger.wake_ready(now=now, limit=10) == []
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
        woken = await ledger.release_slots([Held(t, (slot.name,)) for t in holders], now=now + 1)
        assert woken == waiting[:2]
        assert (await ledger.waiters()).get(slot.name) == 2
        assert (
            await admit_one(ledger, ask(unique("task"), now + 1, slots=[slot]), now + 1)
        ).admitted

    async def test_release_wakes_the_waiters_of_every_slot_given_back(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        one, two = Slot(unique("slot"), 1), Slot(unique("slot"), 1)
        task = unique("task")
        assert (await admit_one(ledger, ask(task, now, slots=[one, two]), now)).admitted
        first = await queue_up(ledger, one.name, now, 2)
        second = await queue_up(ledger, two.name, now, 2)
        woken = await ledger.release_slots([Held(task, (one.name, two.name))], now=now)
        assert sorted(woken) == sorted([first[0], second[0]])

    async def test_release_of_a_slot_not_held_wakes_only_for_room(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        await fill(ledger, slot, now)
        await queue_up(ledger, slot.name, now, 1)
        stranger = Held(unique("task"), (slot.name, unique("slot")))
        assert await ledger.release_slots([stranger], now=now) == []
        assert (await ledger.waiters()).get(slot.name) == 1

    async def test_park_wakes_at_once_when_the_slot_has_room(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        assert await ledger.release_slots([Held(holder, (slot.name,))], now=now) == []
        late = unique("task")
        assert await ledger.park([(slot.name, late)], now=now) == [late]
        assert slot.name not in await ledger.waiters()

    async def test_a_slot_given_back_with_nobody_waiting_wakes_a_later_waiter_at_once(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 3)
        holder = unique("task")
        assert (await admit_one(ledger, ask(holder, now, slots=[slot]), now)).admitted
        assert await ledger.release_slots([Held(holder, (slot.name,))], now=now + 1) == []
        assert await ledger.wake_ready(now=now + 2, limit=10) == []
        late = unique("task")
        assert await ledger.park([(slot.name, late)], now=now + 3) == [late], (
            "a slot whose limit was forgotten has room while nobody holds it"
        )
        assert await ledger.waiters() == {}

    async def test_a_slot_whose_holder_died_wakes_a_later_waiter_at_once(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 2)
        await fill(ledger, slot, now, lease=10.0)
        assert await ledger.wake_ready(now=now + 20, limit=10) == []
        late = unique("task")
        assert await ledger.park([(slot.name, late)], now=now + 21) == [late]

    async def test_a_waiter_of_a_slot_never_admitted_to_is_woken_at_once(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        name, task = unique("slot"), unique("task")
        assert await ledger.park([(name, task)], now=now) == [task], (
            "no limit known and no holder: room 1"
        )

    async def test_a_slot_with_no_limit_and_a_live_holder_wakes_no_waiter(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 3)
        holder, *others = await fill(ledger, slot, now)
        released = [Held(t, (slot.name,)) for t in others]
        assert await ledger.release_slots(released, now=now) == []
        await self.forget_slot_limit(ledger, slot.name)
        waiting = await queue_up(ledger, slot.name, now, 2)
        assert await ledger.wake_ready(now=now + 1, limit=10) == [], (
            "a limit not remembered counts as 1: the live holder takes it"
        )
        assert await ledger.release_slots([Held(holder, (slot.name,))], now=now + 1) == [
            waiting[0]
        ], "with the holder gone, room 1"

    async def test_a_pause_list_is_woken_by_unpark_alone(
        self, ledger: Ledger, clock: Clock, subject: str
    ) -> None:
        now = clock.now()
        name = pause_waiters(subject)
        [task] = await queue_up(ledger, name, now, 1)
        assert await ledger.wake_ready(now=now, limit=10) == [], "a pause list has no room"
        assert await ledger.release_slots([Held(unique("task"), (name,))], now=now) == []
        assert await ledger.waiters() == {name: 1}
        assert await ledger.unpark([name], limit=10) == [task]

    async def test_a_waiter_parked_again_comes_out_first_by_its_id(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        first, second = await queue_up(ledger, slot.name, now, 2)
        assert await ledger.release_slots([Held(holder, (slot.name,))], now=now) == [first]
        [holder] = await fill(ledger, slot, now)
        assert await ledger.park([(slot.name, first)], now=now) == []
        assert await ledger.release_slots([Held(holder, (slot.name,))], now=now) == [first]
        assert (await ledger.waiters()).get(slot.name) == 1
        assert second in await ledger.wake_ready(now=now, limit=10)

    async def test_park_keeps_a_task_in_a_list_once(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        slot = Slot(unique("slot"), 1)
        await fill(ledger, slot, now)
        task = unique("task")
        assert await ledger.park([(slot.name, task), (slot.name, task)], now=now) == []
        assert await ledger.park([(slot.name, task)], now=now) == []
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
        assert await ledger.wake_ready(now=now + 5, limit=10) == []
        firsts = {waiting[slots[0].name][0]: slots[0], waiting[slots[1].name][0]: slots[1]}
        [woken] = await ledger.wake_ready(now=now + 20, limit=1)
        assert woken in firsts
        emptied, other = firsts[woken], next(s for w, s in firsts.items() if w != woken)
        rest = await ledger.wake_ready(now=now + 20, limit=10)
        assert sorted(rest) == sorted([waiting[emptied.name][1], waiting[other.name][0]]), (
            "a woken waiter takes no place: the slot still has room for the next"
        )
        counts = await ledger.waiters()
        assert [counts.get(slot.name) for slot in (emptied, other, busy)] == [None, 1, 1]

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
