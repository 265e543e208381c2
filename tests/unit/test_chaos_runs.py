"""Which (suite, stack) runs `python -m chaos run` makes, counted before the first starts
(the progress bar's total)."""

from __future__ import annotations

from chaos.__main__ import _parser, _runs


def _pairs(*argv: str) -> list[tuple[str, str]]:
    return [(suite.name, stack.name) for suite, stack in _runs(_parser().parse_args(argv))]


def test_a_stack_filter_keeps_only_that_stacks_runs_in_suite_order():
    pairs = _pairs("run", "worker-kill", "clock", "--stack", "redis")
    assert pairs == [("worker-kill", "redis"), ("clock", "redis")]


def test_a_suite_runs_only_on_the_stacks_it_applies_to():
    pairs = _pairs("run", "sqlite-disk-full")
    assert pairs
    assert all(stack in {"embedded", "nats-sqlite"} for _, stack in pairs)


def test_no_suite_named_runs_every_suite_on_every_stack_it_applies_to():
    suites = {suite for suite, _ in _pairs("run", "--quick")}
    assert "worker-kill" in suites
    assert "partition" in suites
