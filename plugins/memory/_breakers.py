"""The in-process BreakerLedger (ADR 0040).

The arithmetic, the input checks and the rule of rest (a closed breaker that counted
nothing in its last two windows reads as never written, and is forgotten) are
``atp.core.flow.breaker``'s; this ledger only keeps the states. Like the store it sits
beside, it runs in one event loop and no method awaits in the middle of a change, so
each call is atomic. A heap of (rest time, key) finds the closed breakers that came to
rest without looking at the others.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from atp.core.flow import breaker
from atp.core.flow.breaker import (
    Breaker,
    BreakerState,
    Circuit,
    check_keys,
    check_probes,
    check_samples,
    current,
    rest_at,
)
from atp.core.ports import BreakerLedger, Probe, Sample

__all__ = ["MemoryBreakers"]


class MemoryBreakers:
    """Every BreakerLedger method, over a dict of states. (Its private names all say
    breaker or rest: MemoryStore mixes it with MemoryLedger, whose names they must not
    shadow.)"""

    def __init__(self) -> None:
        super().__init__()
        self._breakers: dict[str, BreakerState] = {}
        self._rests: dict[str, float] = {}  # key of a closed breaker -> when it rests
        self._resting: list[tuple[float, str]] = []  # heap; an entry counts while in _rests

    async def observe(self, samples: Sequence[Sample], *, now: float) -> list[BreakerState]:
        """Apply each sample in order (``breaker.observe``); the state after each."""
        check_samples(samples)
        self._forget_rested(now)
        return [self._observe_breaker(one, now) for one in samples]

    async def probe(self, probes: Sequence[Probe], *, now: float) -> list[BreakerState]:
        """Apply each request in order (``breaker.probe``); the state after each."""
        check_probes(probes)
        self._forget_rested(now)
        return [self._probe_breaker(one, now) for one in probes]

    async def breakers(self) -> list[BreakerState]:
        """Every breaker kept, by key; each call forgets those at rest by its ``now``."""
        return [self._breakers[key] for key in sorted(self._breakers)]

    async def reset_breakers(self, keys: Sequence[str], *, now: float) -> list[bool]:
        """Forget each breaker (closed, nothing counted); per key, whether it was not closed."""
        check_keys(keys)
        self._forget_rested(now)
        was_open = []
        for key in keys:
            state = self._breakers.pop(key, None)
            self._rests.pop(key, None)
            was_open.append(state is not None and state.circuit is not Circuit.CLOSED)
        return was_open

    def _observe_breaker(self, one: Sample, now: float) -> BreakerState:
        state = current(self._breakers.get(one.key), one.key, one.policy, now)
        state = breaker.observe(state, one.policy, one.ok, one.failed, now, one.by)
        return self._keep_breaker(state, one.policy, now)

    def _probe_breaker(self, one: Probe, now: float) -> BreakerState:
        state = current(self._breakers.get(one.key), one.key, one.policy, now)
        state = breaker.probe(state, one.policy, one.task_id, now, one.until, one.by)
        return self._keep_breaker(state, one.policy, now)

    def _keep_breaker(self, state: BreakerState, policy: Breaker, now: float) -> BreakerState:
        """Store ``state``, or forget it if it is at rest already; return it."""
        key, rest = state.key, rest_at(state, policy.window)
        if rest is not None and rest <= now:
            self._breakers.pop(key, None)
            self._rests.pop(key, None)
            return state
        self._breakers[key] = state
        if rest is None:
            self._rests.pop(key, None)
        elif self._rests.get(key) != rest:
            self._rests[key] = rest
            heapq.heappush(self._resting, (rest, key))
        return state

    def _forget_rested(self, now: float) -> None:
        """Forget the closed breakers at rest by ``now``."""
        heap = self._resting
        while heap and heap[0][0] <= now:
            rest, key = heapq.heappop(heap)
            if self._rests.get(key) == rest:
                del self._rests[key], self._breakers[key]
        if len(heap) > 2 * len(self._rests) + 64:  # drop the entries superseded since
            self._resting = [(rest, key) for key, rest in self._rests.items()]
            heapq.heapify(self._resting)


_: type[BreakerLedger] = MemoryBreakers
