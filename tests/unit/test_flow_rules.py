"""Flow-control rules: parsing, checking, and the gates a task must pass (ADR 0038)."""

from __future__ import annotations

import pytest

from atp.core.errors import InvalidInput
from atp.core.flow.rules import (
    DEFAULT_KEY_CONCURRENCY,
    Bucket,
    Limit,
    Rate,
    Rules,
    Slot,
    Window,
    limit_from_dict,
    limit_to_dict,
    parse_rate,
    validate_key,
)
from atp.core.model import Task


def task(subject: str = "payments.charge", **fields: object) -> Task:
    return Task(id="t1", subject=subject, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "count", "per"),
    [("10/s", 10, 1.0), ("100/m", 100, 60.0), ("5/30s", 5, 30.0), ("1/2.5h", 1, 9000.0)],
)
def test_rates_read_as_people_write_them(text: str, count: int, per: float) -> None:
    assert parse_rate(text) == Rate(count, per)


@pytest.mark.parametrize("text", ["10", "ten/s", "0/s", "10/0s", "10/2y", "", "1/100d"])
def test_a_bad_rate_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="rate"):
        parse_rate(text)


def test_a_limit_needs_a_budget_and_a_burst_needs_a_rate() -> None:
    with pytest.raises(InvalidInput, match="give a concurrency"):
        Limit("payments.*")
    with pytest.raises(InvalidInput, match="burst needs a rate"):
        Limit("payments.*", concurrency=2, burst=5)
    with pytest.raises(InvalidInput, match="concurrency"):
        Limit("payments.*", concurrency=0)


def test_targets_are_checked_as_subject_or_key_patterns() -> None:
    with pytest.raises(InvalidInput):
        Limit("payments..x", concurrency=1)
    with pytest.raises(InvalidInput, match="no whitespace"):
        Limit("cust*omer", key=True, concurrency=1)
    assert Limit("customer:*", key=True, concurrency=1).name == "key:customer:*"
    assert Limit("*", key=True, concurrency=1).matches_key("anything")
    assert Limit("payments.>", rate=parse_rate("1/s")).name == "subject:payments.>"


def test_task_keys_are_checked() -> None:
    assert validate_key("customer:42", "concurrency_key") == "customer:42"
    for bad in ("", "a b", "x*", "k" * 201, 42):
        with pytest.raises(InvalidInput, match="concurrency_key"):
            validate_key(bad, "concurrency_key")


def test_limits_round_trip_as_json_objects() -> None:
    limit = Limit(
        "payments.*",
        concurrency=3,
        rate=parse_rate("10/s"),
        burst=20,
        window=parse_rate("100/m"),
        updated_at=5.0,
    )
    assert limit_from_dict(limit_to_dict(limit)) == limit
    assert limit_from_dict({"target": "a", "rate": "5/s"}).rate == Rate(5, 1.0)
    with pytest.raises(InvalidInput):
        limit_from_dict({"target": "a", "rate": {"count": "x", "per": 1}})


def test_every_matching_subject_rule_applies_with_one_budget_each() -> None:
    rules = Rules(
        (
            Limit("payments.*", rate=parse_rate("10/s"), burst=20),
            Limit("payments.>", concurrency=5, window=parse_rate("100/m")),
            Limit("orders.*", concurrency=1),
        )
    )
    gates = rules.gates(task())
    assert gates.slots == (Slot("s:payments.>", 5),)
    assert gates.buckets == (Bucket("s:payments.*", 10.0, 20),)
    assert gates.windows == (Window("s:payments.>", 100, 60.0),)
    assert not gates.paused


def test_the_most_specific_key_rule_applies_and_each_key_has_its_own_budget() -> None:
    rules = Rules(
        (
            Limit("*", key=True, concurrency=10),
            Limit("customer:*", key=True, concurrency=3),
            Limit("customer:42", key=True, concurrency=1),
            Limit("customer:", key=True, rate=parse_rate("1/s")),
        )
    )
    assert rules.gates(task(concurrency_key="customer:42")).slots == (Slot("k:customer:42", 1),)
    assert rules.gates(task(concurrency_key="customer:7")).slots == (Slot("k:customer:7", 3),)
    assert rules.gates(task(concurrency_key="vendor:1")).slots == (Slot("k:vendor:1", 10),)


def test_a_concurrency_key_no_rule_names_runs_one_at_a_time() -> None:
    gates = Rules().gates(task(concurrency_key="customer:9"))
    assert gates.slots == (Slot("k:customer:9", DEFAULT_KEY_CONCURRENCY),)
    assert DEFAULT_KEY_CONCURRENCY == 1


def test_a_rate_key_meets_only_rate_and_window_rules() -> None:
    rules = Rules(
        (
            Limit("stripe", key=True, concurrency=2),
            Limit("str*", key=True, rate=parse_rate("5/s"), window=parse_rate("100/m")),
        )
    )
    gates = rules.gates(task(rate_key="stripe"))
    assert gates.slots == ()
    assert gates.buckets == (Bucket("k:stripe", 5.0, 1),)
    assert gates.windows == (Window("k:stripe", 100, 60.0),)
    assert Rules().gates(task(rate_key="stripe")).empty


def test_a_paused_pattern_marks_the_subjects_it_matches() -> None:
    rules = Rules(pauses=("payments.*",))
    assert rules.gates(task()).paused
    assert not rules.gates(task("orders.close")).paused
    assert not Rules().gates(task()).paused
