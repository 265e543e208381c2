"""The circuit breaker's policy and arithmetic (ADR 0040), which every ledger applies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core.errors import InvalidInput
from atp.core.flow.breaker import (
    BREAKER_PREFIX,
    Breaker,
    BreakerState,
    Circuit,
    at_rest,
    breaker_key,
    breaker_waiters,
    check_keys,
    check_probes,
    check_samples,
    current,
    observe,
    probe,
    rest_at,
    split_key,
    state_from_dict,
    state_to_dict,
)
from atp.core.ports import Probe, Sample

POLICY = Breaker(ratio=0.5, window=60.0, min_volume=4, open_for=30.0)
T0 = 1_800_000_000.0
"""The start of a fixed window of 60 s (a multiple of 60)."""
KEY = breaker_key("billing", "orders.charge")


def opened(at: float = T0 + 5) -> BreakerState:
    state = observe(BreakerState(KEY), POLICY, 0, 4, at, "w1")
    assert state.circuit is Circuit.OPEN
    return state


def half_open(probe_id: str = "p", until: float = T0 + 60) -> BreakerState:
    state = opened()
    return probe(state, POLICY, probe_id, state.open_until, until, "w2")


# -- the policy ----------------------------------------------------------------------------


def test_the_default_policy() -> None:
    assert Breaker() == Breaker(ratio=0.5, window=60.0, min_volume=20, open_for=30.0)


def test_durations_may_be_written_as_people_write_them() -> None:
    policy = Breaker(ratio=1, window="2m", open_for="30s")  # type: ignore[arg-type]
    assert (policy.ratio, policy.window, policy.open_for) == (1.0, 120.0, 30.0)
    assert isinstance(policy.ratio, float)
    assert Breaker(window="250ms", open_for="1d").window == 0.25  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"ratio": 0},
        {"ratio": -0.1},
        {"ratio": 1.01},
        {"ratio": math.nan},
        {"ratio": True},
        {"ratio": "0.5"},
        {"min_volume": 0},
        {"min_volume": -3},
        {"min_volume": 2.5},
        {"min_volume": True},
        {"window": 0},
        {"window": -1},
        {"window": 86400.5},
        {"window": "soon"},
        {"window": math.inf},
        {"open_for": 0},
        {"open_for": "-5s"},
        {"open_for": "2d"},
        {"open_for": False},
    ],
    ids=repr,
)
def test_a_bad_policy_is_invalid_input(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="breaker"):
        Breaker(**fields)  # type: ignore[arg-type]


def test_the_edges_of_the_policy_are_allowed() -> None:
    policy = Breaker(ratio=1.0, window=86400, min_volume=1, open_for=0.001)
    assert (policy.ratio, policy.window, policy.min_volume) == (1.0, 86400.0, 1)


# -- closed --------------------------------------------------------------------------------


def test_a_closed_breaker_counts_in_its_fixed_window() -> None:
    state = observe(BreakerState(KEY), POLICY, 2, 1, T0 + 10, "w1")
    assert state == BreakerState(KEY, window_start=T0, ok=2, failed=1)
    assert observe(state, POLICY, 0, 0, T0 + 20, "w1") == state


def test_it_opens_at_the_ratio_once_it_holds_min_volume() -> None:
    few = observe(BreakerState(KEY), POLICY, 0, 3, T0 + 5)
    assert few.circuit is Circuit.CLOSED, "3 of 3 failed, but min_volume is 4"
    at_ratio = observe(few, POLICY, 1, 0, T0 + 6, "w9")
    assert at_ratio == BreakerState(
        KEY, Circuit.OPEN, window_start=T0, open_until=T0 + 36, changed_at=T0 + 6, changed_by="w9"
    )
    below = observe(BreakerState(KEY), POLICY, 3, 2, T0 + 5)
    assert below.circuit is Circuit.CLOSED, "2 of 5 is under 0.5"
    assert observe(BreakerState(KEY), POLICY, 2, 2, T0 + 5).circuit is Circuit.OPEN


def test_an_open_breaker_ignores_outcomes() -> None:
    state = opened()
    assert observe(state, POLICY, 100, 0, T0 + 6, "w2") == state
    assert observe(state, POLICY, 0, 100, T0 + 100, "w2") == state


# -- the sliding window --------------------------------------------------------------------


def test_the_previous_window_weighs_by_the_share_still_inside() -> None:
    state = BreakerState(KEY, window_start=T0, prev_ok=10, prev_failed=10)
    assert state.failure_ratio(60.0, T0 + 15) == pytest.approx(7.5 / 15)
    state = BreakerState(KEY, window_start=T0, ok=1, failed=3, prev_ok=8, prev_failed=0)
    assert state.failure_ratio(60.0, T0 + 45) == pytest.approx(3 / (4 + 8 * 0.25))


def test_an_ended_window_counts_as_the_previous_one_until_it_slides_out() -> None:
    state = BreakerState(KEY, window_start=T0, ok=6, failed=2, prev_ok=50, prev_failed=50)
    assert state.failure_ratio(60.0, T0 + 90) == pytest.approx(2 / 8), "share 0.5 of both"
    assert state.failure_ratio(60.0, T0 + 120) == 0.0, "two windows on: nothing counts"
    assert state.failure_ratio(60.0, T0 - 5) == pytest.approx(52 / 108), "a clock behind"


def test_a_new_window_moves_the_counts_to_the_previous_one() -> None:
    policy = Breaker(ratio=0.6, window=60.0, min_volume=10)
    first = observe(BreakerState(KEY), policy, 12, 8, T0 + 5)
    rolled = observe(first, policy, 0, 6, T0 + 75)
    assert rolled == BreakerState(KEY, window_start=T0 + 60, failed=6, prev_ok=12, prev_failed=8)
    assert rolled.circuit is Circuit.CLOSED, "(6 + 8 * 0.75) / (6 + 20 * 0.75) = 12 / 21"
    assert observe(rolled, policy, 0, 2, T0 + 75).circuit is Circuit.OPEN, "14 / 23 >= 0.6"


def test_a_window_further_back_is_forgotten() -> None:
    first = observe(BreakerState(KEY), POLICY, 3, 0, T0 + 5)
    later = observe(first, POLICY, 0, 1, T0 + 125)
    assert later == BreakerState(KEY, window_start=T0 + 120, failed=1)


# -- open, half-open -----------------------------------------------------------------------


def test_a_closed_breaker_lets_every_task_run_and_changes_nothing() -> None:
    state = BreakerState(KEY, window_start=T0, ok=3)
    assert probe(state, POLICY, "t", T0 + 1, T0 + 30, "w1") == state


def test_no_probe_before_open_until_then_the_first_to_ask() -> None:
    state = opened()
    assert probe(state, POLICY, "t1", state.open_until - 0.001, T0 + 90, "w2") == state
    probing = probe(state, POLICY, "t1", state.open_until, T0 + 90, "w3")
    assert probing == BreakerState(
        KEY,
        Circuit.HALF_OPEN,
        window_start=T0,
        open_until=T0 + 35,
        probe="t1",
        probe_until=T0 + 90,
        changed_at=T0 + 35,
        changed_by="w3",
    )


def test_one_probe_at_a_time_granted_again_to_itself() -> None:
    state = half_open("p", until=T0 + 60)
    assert probe(state, POLICY, "other", T0 + 40, T0 + 100, "w4") == state
    again = probe(state, POLICY, "p", T0 + 40, T0 + 100, "w4")
    assert (again.probe, again.probe_until) == ("p", T0 + 100)
    assert (again.changed_at, again.changed_by) == (state.changed_at, "w2"), "no change"


def test_a_probe_whose_claim_ran_out_is_handed_to_the_next() -> None:
    state = half_open("dead", until=T0 + 50)
    taken = probe(state, POLICY, "next", T0 + 50, T0 + 80, "w5")
    assert (taken.circuit, taken.probe, taken.probe_until) == (Circuit.HALF_OPEN, "next", T0 + 80)


def test_a_failed_probe_opens_it_again_for_another_open_for() -> None:
    again = observe(half_open(), POLICY, 0, 1, T0 + 40, "w6")
    assert again == BreakerState(
        KEY, Circuit.OPEN, window_start=T0, open_until=T0 + 70, changed_at=T0 + 40, changed_by="w6"
    )


def test_a_successful_probe_closes_it_with_nothing_counted() -> None:
    state = half_open()
    assert observe(state, POLICY, 0, 0, T0 + 40) == state, "no outcome, no verdict"
    closed = observe(state, POLICY, 1, 0, T0 + 70, "w7")
    assert closed == BreakerState(KEY, window_start=T0 + 60, changed_at=T0 + 70, changed_by="w7")


# -- what every ledger shares --------------------------------------------------------------


def test_a_closed_breaker_rests_once_its_counts_slid_out() -> None:
    counting = BreakerState(KEY, window_start=T0, ok=1, prev_failed=5)
    assert rest_at(counting, 60.0) == T0 + 120
    assert rest_at(BreakerState(KEY, window_start=T0, prev_ok=1), 60.0) == T0 + 60
    assert rest_at(BreakerState(KEY, window_start=T0), 60.0) == -math.inf, "nothing counted"
    assert rest_at(opened(), 60.0) is None
    assert rest_at(half_open(), 60.0) is None, "only a closed breaker rests"
    assert not at_rest(counting, 60.0, T0 + 119.999)
    assert at_rest(counting, 60.0, T0 + 120)


def test_a_breaker_at_rest_reads_as_never_written() -> None:
    counting = BreakerState(KEY, window_start=T0, ok=1, changed_at=T0 - 500, changed_by="w")
    assert current(None, KEY, POLICY, T0) == BreakerState(KEY)
    assert current(counting, KEY, POLICY, T0 + 60) is counting
    assert current(counting, KEY, POLICY, T0 + 120) == BreakerState(KEY)
    assert current(opened(), KEY, POLICY, T0 + 10**6) == opened(), "open never rests"


def test_a_batch_with_one_bad_item_is_invalid_input() -> None:
    good = Sample(KEY, POLICY, 1, 0)
    check_samples([good, Sample(KEY, POLICY, 0, 0)])
    check_probes([Probe(KEY, POLICY, "t", T0)])
    for bad in ("", None, 7):
        with pytest.raises(InvalidInput, match="breaker key"):
            check_keys([KEY, bad])
    for sample in (Sample("", POLICY, 1, 0), Sample(KEY, POLICY, -1, 0)):
        with pytest.raises(InvalidInput):
            check_samples([good, sample])
    for count in (True, 1.0):
        with pytest.raises(InvalidInput, match="failed must be an integer"):
            check_samples([Sample(KEY, POLICY, 0, count)])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="task id"):
        check_probes([Probe(KEY, POLICY, "", T0)])


# -- keys and state ------------------------------------------------------------------------


def test_keys_and_waiter_lists() -> None:
    state = BreakerState(KEY)
    assert (state.group, state.subject) == ("billing", "orders.charge")
    assert split_key("g/a.b/c") == ("g", "a.b/c")
    assert breaker_waiters(KEY) == BREAKER_PREFIX + KEY == "b:billing/orders.charge"


counts = st.integers(0, 10**9)
times = st.floats(0, 4e9, allow_nan=False)
states = st.builds(
    BreakerState,
    st.text(min_size=1),
    st.sampled_from(Circuit),
    window_start=times,
    ok=counts,
    failed=counts,
    prev_ok=counts,
    prev_failed=counts,
    open_until=times,
    probe=st.text(),
    probe_until=times,
    changed_at=times,
    changed_by=st.text(),
)


@given(states)
def test_a_state_survives_its_dict(state: BreakerState) -> None:
    assert state_from_dict(state_to_dict(state)) == state


def test_a_dict_with_only_a_key_is_a_new_breaker() -> None:
    assert state_from_dict({"key": KEY}) == BreakerState(KEY)
