"""The backlog arithmetic behind the autoscaling gauges (ADR 0044), without a store."""

from __future__ import annotations

from atp.core.flow.breaker import BreakerState, Circuit
from atp.core.model import State
from atp.core.ports import Member
from atp.plugins.prometheus._backlog import Backlog, breaker_values, group_backlog, ready_ages


def member(name: str, group: str, *patterns: str) -> Member:
    return Member(name, "worker", "h", 1, "v", group, patterns, 4, 0, 0.0, 0.0)


def test_ages_are_measured_from_run_at_and_never_negative() -> None:
    assert ready_ages({"a": 70.0, "b": 101.0}, now=100.0) == {"a": 30.0, "b": 0.0}


def test_a_group_sums_the_ready_tasks_its_workers_patterns_match_and_takes_the_oldest() -> None:
    workers = [member("w1", "g", "orders.*"), member("w2", "g", "mail.>"), member("w3", "h", "x")]
    counts = {
        ("orders.close", State.READY): 3,
        ("orders.close", State.RUNNING): 5,
        ("mail.send.eu", State.READY): 2,
        ("orders.a.b", State.READY): 7,
        ("x", State.SCHEDULED): 1,
    }
    ages = {"orders.close": 12.0, "mail.send.eu": 40.0, "orders.a.b": 99.0}
    assert group_backlog(workers, counts, ages) == {"g": Backlog(5, 40.0), "h": Backlog(0, 0.0)}


def test_a_subject_two_groups_consume_counts_for_both() -> None:
    workers = [member("w1", "g", "a.>"), member("w2", "h", "a.b")]
    found = group_backlog(workers, {("a.b", State.READY): 4}, {"a.b": 2.0})
    assert found == {"g": Backlog(4, 2.0), "h": Backlog(4, 2.0)}


def test_a_subject_without_a_known_age_counts_in_the_depth_only() -> None:
    found = group_backlog([member("w", "g", ">")], {("a", State.READY): 1}, {})
    assert found == {"g": Backlog(1, 0.0)}


def test_breaker_values_are_0_closed_1_half_open_2_open() -> None:
    states = [
        BreakerState("g/a", Circuit.CLOSED),
        BreakerState("g/b", Circuit.HALF_OPEN),
        BreakerState("h/c.d", Circuit.OPEN),
    ]
    assert list(breaker_values(states)) == [("g", "a", 0), ("g", "b", 1), ("h", "c.d", 2)]
