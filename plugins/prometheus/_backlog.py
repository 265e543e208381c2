"""The backlog a horizontal autoscaler scales on (ADR 0044), from one store reading.

Pure functions over the readings, so the arithmetic is tested without a store: how many
tasks wait READY and how long the oldest has waited, per subject and per worker group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from atp.core.flow.breaker import BreakerState, Circuit
from atp.core.model import State
from atp.core.ports import Member
from atp.core.subjects import compile_pattern

__all__ = ["CIRCUIT_VALUES", "Backlog", "breaker_values", "group_backlog", "ready_ages"]

CIRCUIT_VALUES = {Circuit.CLOSED: 0, Circuit.HALF_OPEN: 1, Circuit.OPEN: 2}
"""The value of ``atp_breaker_state`` for each circuit."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits for one worker group's workers."""

    ready: int
    """READY tasks of every subject the group's patterns match."""
    oldest_age: float
    """Seconds the longest waiting of them has waited; 0 when none waits."""


def ready_ages(oldest: Mapping[str, float], now: float) -> dict[str, float]:
    """Seconds each subject's oldest READY task has waited at ``now`` (never below 0: the
    forwarder may hand a task over just before it is due)."""
    return {subject: max(now - run_at, 0.0) for subject, run_at in oldest.items()}


def group_backlog(
    workers: Sequence[Member],
    counts: Mapping[tuple[str, State], int],
    ages: Mapping[str, float],
) -> dict[str, Backlog]:
    """Per group of the live ``workers``: the READY tasks and the oldest age of the
    subjects any of its workers' patterns match. A subject counts for every group that
    consumes it; a group whose subjects have nothing READY has a backlog of 0."""
    patterns: dict[str, set[str]] = {}
    for member in workers:
        patterns.setdefault(member.group, set()).update(member.patterns)
    ready = {subject: n for (subject, state), n in counts.items() if state is State.READY}
    return {
        group: _backlog([compile_pattern(p) for p in sorted(found)], ready, ages)
        for group, found in patterns.items()
    }


def _backlog(
    matchers: Sequence[Callable[[str], bool]], ready: Mapping[str, int], ages: Mapping[str, float]
) -> Backlog:
    depth, oldest = 0, 0.0
    for subject, count in ready.items():
        if any(match(subject) for match in matchers):
            depth += count
            oldest = max(oldest, ages.get(subject, 0.0))
    return Backlog(depth, oldest)


def breaker_values(breakers: Iterable[BreakerState]) -> Iterable[tuple[str, str, int]]:
    """(group, subject, value) of each breaker, the value from ``CIRCUIT_VALUES``."""
    for state in breakers:
        yield state.group, state.subject, CIRCUIT_VALUES[state.circuit]
