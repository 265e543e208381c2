"""The reference breaker ledger and the builders the BreakerLedger checks share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol

from atp.core.flow import breaker
from atp.core.flow.breaker import Breaker, BreakerState, Circuit, at_rest, current
from atp.core.ports import BreakerLedger, FlowLedger, Probe, Sample
from atp.sdk.conformance._flow_support import TIME

POLICY = Breaker(ratio=0.5, window=60.0, min_volume=4, open_for=30.0)
"""Opens on 2 failures in 4 outcomes; probes 30 s after."""


class Ledger(BreakerLedger, FlowLedger, Protocol):
    """What the suite's fixture provides: both ports on one object."""


def window_start(now: float, policy: Breaker = POLICY) -> float:
    """The start of the fixed window holding ``now``."""
    return math.floor(now / policy.window) * policy.window


def next_window(now: float, policy: Breaker = POLICY) -> float:
    """The start of the fixed window after the one holding ``now``."""
    return window_start(now, policy) + policy.window


@dataclass
class Reference:
    """The answers a ledger owes: ``breaker.observe`` and ``probe`` applied in order over a
    plain dict, a breaker at rest (``breaker.at_rest``) read as new, each write forgetting
    those at rest."""

    states: dict[str, BreakerState] = field(default_factory=dict)
    windows: dict[str, float] = field(default_factory=dict)

    def observe(self, samples: Sequence[Sample], now: float) -> list[BreakerState]:
        self._forget(now)
        return [
            self._keep(
                breaker.observe(
                    self._read(s.key, s.policy, now), s.policy, s.ok, s.failed, now, s.by
                ),
                s.policy,
            )
            for s in samples
        ]

    def probe(self, probes: Sequence[Probe], now: float) -> list[BreakerState]:
        self._forget(now)
        return [
            self._keep(
                breaker.probe(
                    self._read(p.key, p.policy, now), p.policy, p.task_id, now, p.until, p.by
                ),
                p.policy,
            )
            for p in probes
        ]

    def reset(self, keys: Sequence[str], now: float) -> list[bool]:
        self._forget(now)
        was_open = []
        for key in keys:
            state = self.states.pop(key, None)
            was_open.append(state is not None and state.circuit is not Circuit.CLOSED)
        return was_open

    def listing(self, now: float) -> list[BreakerState]:
        """What ``breakers()`` owes after a write at ``now``."""
        kept = [key for key, s in self.states.items() if not at_rest(s, self.windows[key], now)]
        return [self.states[key] for key in sorted(kept)]

    def _read(self, key: str, policy: Breaker, now: float) -> BreakerState:
        return current(self.states.get(key), key, policy, now)

    def _keep(self, state: BreakerState, policy: Breaker) -> BreakerState:
        self.states[state.key] = state
        self.windows[state.key] = policy.window
        return state

    def _forget(self, now: float) -> None:
        for key in [k for k, s in self.states.items() if at_rest(s, self.windows[k], now)]:
            del self.states[key]


def same_state(got: BreakerState, expected: BreakerState) -> bool:
    """Equal, with times compared to within ``TIME`` (a server may round them)."""
    for one in fields(BreakerState):
        a, b = getattr(got, one.name), getattr(expected, one.name)
        if isinstance(b, float) and isinstance(a, int | float):
            if abs(a - b) > TIME:
                return False
        elif a != b:
            return False
    return True


def same_states(got: Sequence[BreakerState], expected: Sequence[BreakerState]) -> bool:
    return len(got) == len(expected) and all(map(same_state, got, expected))


def sample(key: str, ok: int = 0, failed: int = 0, policy: Breaker = POLICY) -> Sample:
    return Sample(key, policy, ok, failed)


def ask(key: str, task_id: str, until: float, policy: Breaker = POLICY) -> Probe:
    return Probe(key, policy, task_id, until)


async def observe_one(ledger: BreakerLedger, one: Sample, now: float) -> BreakerState:
    [state] = await ledger.observe([one], now=now)
    return state


async def probe_one(ledger: BreakerLedger, one: Probe, now: float) -> BreakerState:
    [state] = await ledger.probe([one], now=now)
    return state


async def open_one(ledger: BreakerLedger, key: str, now: float) -> BreakerState:
    """Open breaker ``key`` (POLICY) at ``now``: ``min_volume`` failures."""
    state = await observe_one(ledger, sample(key, failed=POLICY.min_volume), now)
    assert state.circuit is Circuit.OPEN, state
    return state


def runs(state: BreakerState, task_id: str) -> bool:
    """Whether ``task_id`` may run by ``state`` (the answer of ``probe``)."""
    return state.circuit is Circuit.CLOSED or state.probe == task_id
