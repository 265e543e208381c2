"""The BreakerLedger conformance suite: every guarantee of ``atp.core.ports.BreakerLedger``.

Subclass it under a ``Test`` name and provide a ``ledger`` fixture: a store object that
is both a BreakerLedger and a FlowLedger (a breaker's waiter list is a flow list)::

    class TestMyBreakers(BreakerLedgerConformance):
        @pytest.fixture
        async def ledger(self, clock):
            store = make_my_store(clock)   # a fresh, EMPTY store
            yield store
            await store.close()

The ledger must be fresh at the start of each test: ``breakers`` and ``wake_ready`` see
every breaker and list. Keys come from ``unique()`` all the same.

Rest: a closed breaker that counted nothing in the two windows (of the policy given)
before a call's ``now`` is at rest. Every ledger reads it as a key never written, so
the answers do not depend on how soon it forgot it, and each write forgets those at rest
by its ``now``: after a write, ``breakers`` lists exactly the breakers not at rest then.

Time: every BreakerLedger method takes its times as arguments, so this suite never
waits. Its times are offsets from ``clock.now()``, and from the start of a fixed window
where the weighting of the previous window matters. Answers are compared with
``Reference``: ``atp.core.flow.breaker`` applied in order over a plain dict.
"""

from __future__ import annotations

import random

import pytest

from atp.core.errors import InvalidInput
from atp.core.flow.breaker import (
    Breaker,
    BreakerState,
    Circuit,
    breaker_key,
    breaker_waiters,
)
from atp.core.flow.rules import Slot
from atp.core.ports import BreakerLedger, Clock, FlowLedger, Held, Probe, Sample, Wait
from atp.sdk.conformance._breaker_support import (
    POLICY,
    Ledger,
    Reference,
    ask,
    next_window,
    observe_one,
    open_one,
    probe_one,
    runs,
    same_state,
    same_states,
    sample,
    window_start,
)
from atp.sdk.conformance._flow_support import RESERVE, fill
from atp.sdk.conformance._support import PortSuite, missing_fixture, unique

__all__ = ["BreakerLedgerConformance"]

SEED = 20_261_204
STEPS = 400
LEASE = 20.0
BAD_SAMPLES = [
    sample(""),
    sample("k", ok=-1),
    sample("k", failed=-2),
    Sample("k", POLICY, 1.5, 0),  # type: ignore[arg-type]
]


class BreakerLedgerConformance(PortSuite):
    """Checks a BreakerLedger (on a FlowLedger) against the contract in ``atp.core.ports``."""

    @pytest.fixture
    def ledger(self, clock: Clock) -> Ledger:
        """Override: a fresh store, a BreakerLedger and a FlowLedger, built with ``clock``."""
        missing_fixture(self, "ledger")

    @pytest.fixture
    def key(self) -> str:
        """A breaker key no other test uses."""
        return new_key()

    async def test_implements_the_protocol(self, ledger: Ledger) -> None:
        assert isinstance(ledger, BreakerLedger)
        assert isinstance(ledger, FlowLedger)

    async def test_empty_batches_do_nothing(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        assert await ledger.observe([], now=now) == []
        assert await ledger.probe([], now=now) == []
        assert await ledger.reset_breakers([], now=now) == []
        assert await ledger.breakers() == []

    async def test_a_key_never_written_is_closed_with_nothing_counted(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        state = await probe_one(ledger, ask(key, "t1", now + LEASE), now)
        assert same_state(state, BreakerState(key))
        assert runs(state, "t1"), "a closed breaker lets every task run"
        assert await ledger.breakers() == [], "asking a closed breaker counts nothing"

    # -- closed ----------------------------------------------------------------------------

    async def test_a_closed_breaker_counts_outcomes_in_its_window(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        t0 = next_window(clock.now())
        first = await observe_one(ledger, sample(key, ok=2, failed=1), t0 + 10)
        second = await observe_one(ledger, sample(key, ok=0, failed=0), t0 + 20)
        assert same_state(first, BreakerState(key, window_start=t0, ok=2, failed=1))
        assert same_state(second, first), "nothing reported changes nothing"
        assert second.failure_ratio(POLICY.window, t0 + 20) == pytest.approx(1 / 3)

    async def test_failures_open_it_only_once_the_window_holds_min_volume(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = next_window(clock.now()) + 5
        few = await observe_one(ledger, sample(key, failed=POLICY.min_volume - 1), now)
        assert few.circuit is Circuit.CLOSED, "every outcome failed, but too few of them"
        opened = await observe_one(ledger, sample(key, ok=1), now + 1)
        expected = BreakerState(
            key,
            Circuit.OPEN,
            window_start=now - 5,
            open_until=now + 1 + POLICY.open_for,
            changed_at=now + 1,
        )
        assert same_state(opened, expected), "3 failures in 4 outcomes: open, counts cleared"

    async def test_it_opens_at_the_ratio_and_not_below(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        at, below = new_key(), new_key()
        states = await ledger.observe(
            [sample(at, ok=2, failed=2), sample(below, ok=3, failed=2)], now=now
        )
        assert [state.circuit for state in states] == [Circuit.OPEN, Circuit.CLOSED]

    async def test_an_open_breaker_ignores_outcomes(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        opened = await open_one(ledger, key, now)
        later = await ledger.observe([sample(key, ok=100), sample(key, failed=5)], now=now + 1)
        assert same_states(later, [opened, opened]), "attempts started before it opened"

    # -- open and half-open ----------------------------------------------------------------

    async def test_no_probe_runs_before_open_until(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        opened = await open_one(ledger, key, now)
        early = await probe_one(ledger, ask(key, "t1", now + 60), opened.open_until - 0.5)
        assert same_state(early, opened)
        assert not runs(early, "t1")
        due = opened.open_until
        granted = await probe_one(ledger, ask(key, "t2", due + LEASE), due)
        expected = BreakerState(
            key,
            Circuit.HALF_OPEN,
            window_start=opened.window_start,
            open_until=opened.open_until,
            probe="t2",
            probe_until=due + LEASE,
            changed_at=due,
        )
        assert same_state(granted, expected), "at open_until the first to ask probes"
        assert runs(granted, "t2")

    async def test_the_first_probe_wins_and_the_next_is_refused(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        opened = await open_one(ledger, key, now)
        due = opened.open_until + 1
        states = await ledger.probe(
            [ask(key, "first", due + LEASE), ask(key, "second", due + LEASE)], now=due
        )
        assert [state.probe for state in states] == ["first", "first"], "in the order given"
        assert runs(states[0], "first")
        assert not runs(states[1], "second")
        third = await probe_one(ledger, ask(key, "third", due + 2 + LEASE), due + 2)
        assert same_state(third, states[0]), "one probe at a time, across calls too"

    async def test_the_probe_asking_again_is_granted_again(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        due = (await open_one(ledger, key, now)).open_until
        first = await probe_one(ledger, ask(key, "probe", due + LEASE), due)
        again = await probe_one(ledger, ask(key, "probe", due + 5 + LEASE), due + 5)
        assert runs(again, "probe"), "a redelivered probe may run"
        assert again.probe_until == pytest.approx(due + 5 + LEASE), "its claim moves on"
        assert again.changed_at == pytest.approx(first.changed_at), "the circuit did not change"

    async def test_a_probe_whose_claim_ran_out_is_handed_to_another(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        due = (await open_one(ledger, key, now)).open_until
        await probe_one(ledger, ask(key, "dead", due + 5), due)
        held = await probe_one(ledger, ask(key, "other", due + 50), due + 4.5)
        assert held.probe == "dead", "its claim still holds"
        taken = await probe_one(ledger, ask(key, "other", due + 50), due + 5)
        assert taken.probe == "other", "its claim ran out: the next to ask probes"
        assert taken.probe_until == pytest.approx(due + 50)
        back = await probe_one(ledger, ask(key, "dead", due + 60), due + 6)
        assert not runs(back, "dead"), "the first probe lost its claim for good"

    async def test_a_failed_probe_opens_it_again(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        due = (await open_one(ledger, key, now)).open_until
        await probe_one(ledger, ask(key, "probe", due + LEASE), due)
        failed = await observe_one(ledger, sample(key, failed=1), due + 3)
        expected = BreakerState(
            key,
            Circuit.OPEN,
            window_start=window_start(due + 3),
            open_until=due + 3 + POLICY.open_for,
            changed_at=due + 3,
        )
        assert same_state(failed, expected), "one failure of the probe: another open_for"
        early = await probe_one(ledger, ask(key, "next", due + 60), due + 3 + POLICY.open_for - 1)
        assert not runs(early, "next")

    async def test_a_successful_probe_closes_it_and_clears_the_counts(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        due = (await open_one(ledger, key, now)).open_until
        await probe_one(ledger, ask(key, "probe", due + LEASE), due)
        nothing = await observe_one(ledger, sample(key), due + 1)
        assert nothing.circuit is Circuit.HALF_OPEN, "no outcome, no verdict"
        closed = await observe_one(ledger, sample(key, ok=1), due + 2)
        expected = BreakerState(key, window_start=window_start(due + 2), changed_at=due + 2)
        assert same_state(closed, expected)
        after = await observe_one(ledger, sample(key, failed=POLICY.min_volume - 1), due + 3)
        assert (after.circuit, after.failed, after.prev_failed) == (Circuit.CLOSED, 3, 0)

    async def test_a_change_is_stamped_with_whoever_made_it(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        counted = await observe_one(ledger, Sample(key, POLICY, 1, 1, by="w0"), now)
        opened = await observe_one(ledger, Sample(key, POLICY, 0, 2, by="w1"), now)
        ignored = await observe_one(ledger, Sample(key, POLICY, 0, 1, by="w2"), now + 1)
        due = opened.open_until
        probing = await probe_one(ledger, Probe(key, POLICY, "t1", due + LEASE, by="w3"), due)
        again = await probe_one(ledger, Probe(key, POLICY, "t1", due + LEASE, by="w4"), due + 1)
        closed = await observe_one(ledger, Sample(key, POLICY, 1, 0, by="w5"), due + 2)
        stamps = [(s.changed_by, s.changed_at) for s in (counted, opened, ignored, probing, again)]
        assert stamps == [("", 0.0), ("w1", now), ("w1", now), ("w3", due), ("w3", due)], (
            "counting is no change, nor is a probe asking again"
        )
        assert (closed.changed_by, closed.changed_at) == ("w5", due + 2)

    # -- the sliding window ----------------------------------------------------------------

    async def test_the_previous_window_counts_by_its_share_still_inside(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        policy = Breaker(ratio=0.6, window=60.0, min_volume=10, open_for=30.0)
        t0 = next_window(clock.now(), policy)
        await observe_one(ledger, sample(key, ok=12, failed=8, policy=policy), t0 + 5)
        at = t0 + policy.window + 15  # the previous window's share: 0.75
        rolled = await observe_one(ledger, sample(key, failed=6, policy=policy), at)
        expected = BreakerState(
            key, window_start=t0 + 60, failed=6, prev_ok=12, prev_failed=8, changed_at=0.0
        )
        assert same_state(rolled, expected)
        assert rolled.failure_ratio(policy.window, at) == pytest.approx(12 / 21), "(6 + 6) / 21"
        tipped = await observe_one(ledger, sample(key, failed=2, policy=policy), at)
        assert tipped.circuit is Circuit.OPEN, "14 / 23 >= 0.6 (unweighted 16 / 28 would not)"

    async def test_a_window_further_back_counts_nothing(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        t0 = next_window(clock.now())
        await observe_one(ledger, sample(key, ok=1, failed=1), t0 + 5)
        later = await observe_one(ledger, sample(key, failed=1), t0 + 2 * POLICY.window + 5)
        assert (later.ok, later.failed, later.prev_ok, later.prev_failed) == (0, 1, 0, 0)
        assert later.window_start == pytest.approx(t0 + 2 * POLICY.window)

    async def test_a_breaker_at_rest_reads_as_new(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        t0 = next_window(clock.now())
        await observe_one(ledger, sample(key, ok=1), t0 + 5)
        rested = t0 + 2 * POLICY.window  # nothing counted in the two windows up to now
        state = await probe_one(ledger, ask(key, "t1", rested + LEASE), rested)
        assert same_state(state, BreakerState(key))
        assert await ledger.breakers() == []

    # -- batches ---------------------------------------------------------------------------

    async def test_one_call_reports_for_several_keys(self, ledger: Ledger, clock: Clock) -> None:
        now = clock.now()
        keys = [new_key() for _ in range(3)]
        states = await ledger.observe(
            [sample(keys[0], failed=4), sample(keys[1], ok=1), sample(keys[2], ok=1, failed=1)],
            now=now,
        )
        assert [(s.key, s.circuit, s.ok, s.failed) for s in states] == [
            (keys[0], Circuit.OPEN, 0, 0),
            (keys[1], Circuit.CLOSED, 1, 0),
            (keys[2], Circuit.CLOSED, 1, 1),
        ]
        assert [state.key for state in await ledger.breakers()] == sorted(keys)

    async def test_one_call_applies_a_keys_samples_in_order(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        first, second = new_key(), new_key()
        states = await ledger.observe(
            [
                sample(first, failed=4),
                sample(second, ok=10),
                sample(first, ok=10),
                sample(second, failed=4),
            ],
            now=now,
        )
        assert [(s.circuit, s.ok, s.failed) for s in states] == [
            (Circuit.OPEN, 0, 0),
            (Circuit.CLOSED, 10, 0),
            (Circuit.OPEN, 0, 0),
            (Circuit.CLOSED, 10, 4),
        ], "opened first, the successes are ignored; after them, 4 in 14 is below the ratio"

    # -- listing and reset -----------------------------------------------------------------

    async def test_breakers_lists_by_key_all_but_those_at_rest(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        t0 = next_window(clock.now())
        keys = [new_key() for _ in range(4)]
        opened, counting, rested, recovered = keys
        await ledger.observe([sample(rested, ok=1), sample(recovered, failed=4)], now=t0 + 5)
        open_state = await open_one(ledger, opened, t0 + 5)
        await probe_one(ledger, ask(recovered, "probe", t0 + 200), t0 + 40)
        later = t0 + 2 * POLICY.window + 10
        await observe_one(ledger, sample(recovered, ok=1), later)
        count_state = await observe_one(ledger, sample(counting, ok=1), later)
        listed = await ledger.breakers()
        assert [state.key for state in listed] == sorted([opened, counting])
        by_key = {state.key: state for state in listed}
        assert same_state(by_key[opened], open_state), "an open breaker never rests"
        assert same_state(by_key[counting], count_state)

    async def test_reset_closes_and_says_which_were_not_closed(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        now = clock.now()
        opened, half, counting, unknown = (new_key() for _ in range(4))
        await open_one(ledger, opened, now)
        due = (await open_one(ledger, half, now)).open_until
        await probe_one(ledger, ask(half, "probe", due + LEASE), due)
        await observe_one(ledger, sample(counting, ok=1, failed=1), due)
        was = await ledger.reset_breakers([opened, half, counting, unknown, opened], now=due + 1)
        assert was == [True, True, False, False, False], "the repeat finds it closed"
        assert await ledger.breakers() == [], "closed with nothing counted: at rest"
        recount = await observe_one(ledger, sample(counting, failed=3), due + 2)
        assert (recount.circuit, recount.ok, recount.failed) == (Circuit.CLOSED, 0, 3)
        again = await probe_one(ledger, ask(half, "other", due + LEASE), due + 2)
        assert runs(again, "other")

    # -- the breaker's waiter list ---------------------------------------------------------

    async def test_a_breakers_waiter_list_is_never_woken_by_room(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        held = breaker_waiters(key)
        slot = Slot(unique("slot"), 1)
        [holder] = await fill(ledger, slot, now)
        waits = [Wait(held, "held-1"), Wait(held, "held-2", "g", 3, 1.0), Wait(slot.name, "w")]
        assert await ledger.park(waits, now=now, reserve=RESERVE) == []
        freed = await ledger.release_slots([Held(holder, (slot.name,))], now=now, reserve=RESERVE)
        assert freed == ["w"], "the slot's waiter comes out, the breaker's stay"
        given = [Held(unique("task"), (held,))]
        assert await ledger.release_slots(given, now=now, reserve=RESERVE) == []
        assert await ledger.wake_ready(now=now + 100, limit=10, reserve=RESERVE) == []
        assert await ledger.park([Wait(held, "held-3")], now=now, reserve=RESERVE) == []
        assert await ledger.waiters() == {held: 3}
        assert sorted(await ledger.unpark([held], limit=10)) == ["held-1", "held-2", "held-3"]

    # -- bad input -------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", BAD_SAMPLES, ids=["empty-key", "ok<0", "failed<0", "float"])
    async def test_a_bad_sample_is_refused_changing_nothing(
        self, ledger: Ledger, clock: Clock, key: str, bad: Sample
    ) -> None:
        now = clock.now()
        with pytest.raises(InvalidInput):
            await ledger.observe([sample(key, failed=4), bad], now=now)
        assert await ledger.breakers() == [], "the good sample before it was not applied"

    @pytest.mark.parametrize(
        "bad", [ask("", "t1", 0.0), ask("k", "", 0.0)], ids=["empty-key", "empty-task"]
    )
    async def test_a_bad_probe_is_refused_changing_nothing(
        self, ledger: Ledger, clock: Clock, key: str, bad: Probe
    ) -> None:
        now = clock.now()
        due = (await open_one(ledger, key, now)).open_until
        with pytest.raises(InvalidInput):
            await ledger.probe([ask(key, "probe", due + LEASE), bad], now=due)
        [state] = await ledger.breakers()
        assert state.circuit is Circuit.OPEN, "the good probe before it was not applied"

    async def test_a_bad_key_to_reset_is_refused_changing_nothing(
        self, ledger: Ledger, clock: Clock, key: str
    ) -> None:
        now = clock.now()
        await open_one(ledger, key, now)
        with pytest.raises(InvalidInput):
            await ledger.reset_breakers([key, ""], now=now)
        assert [state.circuit for state in await ledger.breakers()] == [Circuit.OPEN]

    # -- the arithmetic, at random ---------------------------------------------------------

    async def test_the_ledger_answers_as_the_arithmetic_does(
        self, ledger: Ledger, clock: Clock
    ) -> None:
        """Random reports, probes and resets over a few keys with their own policies, time
        moving by steps from none to several windows: every answer, and the listing after
        each write, equals the Reference's."""
        chance = random.Random(SEED)
        policies = {
            new_key(): Breaker(ratio, window, volume, open_for)
            for ratio, window, volume, open_for in [
                (0.5, 10.0, 3, 5.0),
                (0.3, 60.0, 1, 20.0),
                (1.0, 4.0, 2, 3.0),
                (0.75, 30.0, 5, 45.0),
            ]
        }
        keys = sorted(policies)
        reference = Reference()
        now = clock.now()
        for step in range(STEPS):
            now += chance.choice([0.0, 0.25, 1.0, 3.0, 7.5, 25.0, 130.0])
            picked = [chance.choice(keys) for _ in range(chance.randint(1, 3))]
            worker, roll = chance.choice(["w1", "w2"]), chance.random()
            if roll < 0.05:
                was = await ledger.reset_breakers(picked, now=now)
                assert was == reference.reset(picked, now), f"step {step}: reset"
            elif roll < 0.55:
                samples = [
                    Sample(k, policies[k], chance.randint(0, 3), chance.randint(0, 3), by=worker)
                    for k in picked
                ]
                states = await ledger.observe(samples, now=now)
                expected = reference.observe(samples, now)
                assert same_states(states, expected), f"step {step}: {states} != {expected}"
            else:
                probes = [
                    Probe(
                        k,
                        policies[k],
                        chance.choice("abc"),
                        now + chance.choice([1.0, 9.0]),
                        worker,
                    )
                    for k in picked
                ]
                states = await ledger.probe(probes, now=now)
                expected = reference.probe(probes, now)
                assert same_states(states, expected), f"step {step}: {states} != {expected}"
            listed = await ledger.breakers()
            assert same_states(listed, reference.listing(now)), f"step {step}: listing"


def new_key() -> str:
    """A breaker key (group and subject) no other test uses."""
    return breaker_key(unique("group"), f"{unique('breaker')}.work")
