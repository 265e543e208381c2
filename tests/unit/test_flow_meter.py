"""The bucket and window arithmetic every ledger shares: its bounds hold for any arrivals."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from atp.core.flow.meter import EPSILON, bucket_admit, window_admit

arrivals = st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=300).map(sorted)


def run_bucket(times: list[float], rate: float, burst: int) -> tuple[list[float], list[float]]:
    tat, queue, admitted, retries = 0.0, 0.0, [], []
    for now in times:
        ok, tat, queue, retry_at = bucket_admit(tat, queue, now, rate, burst)
        (admitted if ok else retries).append(now if ok else retry_at)
    return admitted, retries


def test_a_bucket_admits_its_burst_at_once_then_one_per_interval() -> None:
    admitted, retries = run_bucket([0.0] * 5, rate=2.0, burst=3)
    assert len(admitted) == 3
    assert retries == [0.5, 1.0]  # the refused come back spaced at the rate


@settings(max_examples=200, deadline=None)
@given(arrivals, st.integers(1, 20), st.integers(1, 10))
def test_no_stretch_of_a_bucket_admits_more_than_burst_plus_rate_times_its_length(
    times: list[float], rate: int, burst: int
) -> None:
    admitted, _ = run_bucket(times, float(rate), burst)
    for i, start in enumerate(admitted):
        for length in (0.25, 1.0, 3.0):
            inside = sum(1 for t in admitted[i:] if t <= start + length + EPSILON)
            assert inside <= burst + rate * length + 1e-6


@settings(max_examples=200, deadline=None)
@given(arrivals, st.integers(1, 20), st.integers(1, 10))
def test_refused_tasks_are_told_to_come_back_spaced_at_the_rate(
    times: list[float], rate: int, burst: int
) -> None:
    _, retries = run_bucket(times, float(rate), burst)
    for earlier, later in itertools.pairwise(retries):
        assert later - earlier >= 1.0 / rate - 1e-9


@settings(max_examples=200, deadline=None)
@given(arrivals, st.integers(1, 20), st.floats(0.1, 5.0))
def test_no_window_of_its_period_admits_more_than_its_count(
    times: list[float], count: int, period: float
) -> None:
    log: list[float] = []
    queue = 0.0
    for now in times:
        ok, log, queue, retry_at = window_admit(log, queue, now, count, period)
        if ok:
            log.append(now)
        else:
            assert retry_at >= now  # equal only where float rounding meets the edge
        assert sum(1 for t in log if t > now - period) <= count


def test_a_full_window_names_when_room_comes_back() -> None:
    ok, log, queue, retry_at = window_admit([1.0, 2.0], 0.0, 2.5, 2, 10.0)
    assert not ok
    assert retry_at == 11.0
    ok, log, queue, retry_at = window_admit(log, queue, 2.6, 2, 10.0)
    assert not ok
    assert retry_at == 16.0
    ok, *_ = window_admit(log, queue, 11.0, 2, 10.0)
    assert ok
