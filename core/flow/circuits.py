"""The worker's side of circuit breakers (ADR 0040): hold a tripped subject's tasks, let
one probe through, report outcomes, announce what changed.

Each worker keeps the last state it saw of its group's breakers, read again every
``REFRESH`` (one ledger call, only for a worker with a breaker policy) and after each call
of its own. A task whose breaker it last saw closed runs without a ledger call, so a
breaker costs nothing on the hot path while it is closed; outcomes are reported once per
batch of recorded outcomes. A task of a breaker not closed asks the ledger for the probe;
refused, it is handed back with its attempt refunded and parked in the breaker's waiter
list (``b:<group>/<subject>``), which no slot ever opens: the probe's success wakes it,
or the scheduler's flow sweep (``wake_breakers``) when that wake-up was lost, or when an
open breaker's time is up and nothing else arrives to probe it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from atp.core.errors import AtpError
from atp.core.flow.breaker import (
    BREAKER_PREFIX,
    COUNTED_KINDS,
    Breaker,
    BreakerState,
    Circuit,
    breaker_key,
    breaker_waiters,
)
from atp.core.flow.service import wake_lists
from atp.core.handlers import HandlerRegistry
from atp.core.model import State, Task
from atp.core.plugins import HookEmitter
from atp.core.ports import BreakerLedger, Clock, FlowLedger, Outcome, Probe, Sample, TaskStore

__all__ = ["Circuits", "wake_breakers"]

log = logging.getLogger("atp.worker.breaker")

CHANGED = 1e-6
"""Seconds within which a state's ``changed_at`` means this very call changed it."""
_SUBJECTS = 10_000
"""Subjects whose policy is remembered; past that the memo starts again (a bound against
a flood of distinct subjects)."""


class Circuits:
    """One worker's circuit breakers: those of its handlers' policies, in its group."""

    def __init__(
        self,
        store: TaskStore,
        clock: Clock,
        registry: HandlerRegistry,
        *,
        group: str,
        owner: str,
        emit: HookEmitter,
    ) -> None:
        wanted = any(handler.breaker is not None for handler in registry)
        held = isinstance(store, BreakerLedger) and isinstance(store, FlowLedger)
        self._ledger = store if wanted and held and isinstance(store, BreakerLedger) else None
        self._flow = store if isinstance(store, FlowLedger) else None
        self._clock = clock
        self._registry = registry
        self._group = group
        self._owner = owner
        self._emit = emit
        self._seen: dict[str, BreakerState] = {}
        """Breaker key -> the state last seen; a key missing was closed."""
        self._policies: dict[str, Breaker | None] = {}
        if wanted and not held:
            log.warning(
                "worker %s: the store %s keeps no breaker ledger: circuit breakers are off",
                owner,
                type(store).__name__,
            )

    @property
    def active(self) -> bool:
        return self._ledger is not None

    def policy(self, subject: str) -> Breaker | None:
        """The breaker policy of ``subject``'s handler here, None for none."""
        if subject not in self._policies:
            if len(self._policies) >= _SUBJECTS:
                self._policies.clear()
            handler = self._registry.resolve(subject)
            self._policies[subject] = handler.breaker if handler is not None else None
        return self._policies[subject]

    async def refresh(self) -> None:
        """Read the breakers again (what other workers of the group changed)."""
        if self._ledger is None:
            return
        prefix = f"{self._group}/"
        states = await self._ledger.breakers()
        self._seen = {s.key: s for s in states if s.key.startswith(prefix)}

    async def screen(self, tasks: Sequence[Task], lease_until: float) -> dict[int, str]:
        """The tasks a breaker holds back: position -> the waiter list each joins.

        Only tasks whose breaker was last seen not closed cost a ledger call (``probe``):
        of those, one per breaker becomes its probe (or is one already), and a breaker
        closed meanwhile lets them all run."""
        if self._ledger is None:
            return {}
        asking: list[tuple[int, Probe]] = []
        for i, task in enumerate(tasks):
            policy = self.policy(task.subject)
            if policy is None:
                continue
            key = breaker_key(self._group, task.subject)
            seen = self._seen.get(key)
            if seen is not None and seen.circuit is not Circuit.CLOSED:
                asking.append((i, Probe(key, policy, task.id, lease_until, self._owner)))
        if not asking:
            return {}
        now = self._clock.now()
        states = await self._ledger.probe([probe for _, probe in asking], now=now)
        held: dict[int, str] = {}
        for (i, probe), state in zip(asking, states, strict=True):
            self._learn(state, now)
            if state.circuit is not Circuit.CLOSED and state.probe != probe.task_id:
                held[i] = breaker_waiters(probe.key)
        return held

    async def record(self, finished: Sequence[tuple[Task, Outcome]]) -> None:
        """Report the outcomes of attempts that ran; wake a closed breaker's waiters.
        Never raises: a lost report only leaves the breaker a few outcomes behind."""
        if self._ledger is None:
            return
        samples = self._samples(finished)
        if not samples:
            return
        now = self._clock.now()
        try:
            states = await self._ledger.observe(samples, now=now)
            closed = [state.key for state in states if self._learn(state, now) is Circuit.CLOSED]
            if closed and self._flow is not None:
                names = [breaker_waiters(key) for key in closed]
                await wake_lists(self._flow, names, self._clock)
        except AtpError as exc:
            log.warning(
                "worker %s: reporting %d breaker samples failed: %s", self._owner, len(samples), exc
            )

    def _samples(self, finished: Sequence[tuple[Task, Outcome]]) -> list[Sample]:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        policies: dict[str, Breaker] = {}
        for task, outcome in finished:
            policy = self.policy(task.subject)
            if policy is None:
                continue
            ok = outcome.state is State.SUCCEEDED
            failed = outcome.error is not None and outcome.error.kind in COUNTED_KINDS
            if not (ok or failed):
                continue
            key = breaker_key(self._group, task.subject)
            policies[key] = policy
            counts[key][0 if ok else 1] += 1
        return [
            Sample(key, policies[key], ok, failed, self._owner)
            for key, (ok, failed) in counts.items()
        ]

    def _learn(self, state: BreakerState, now: float) -> Circuit | None:
        """Keep ``state``; if this worker's call changed its circuit, announce it and
        return the circuit it changed to."""
        before = self._seen.get(state.key)
        if state.circuit is Circuit.CLOSED and state.ok == 0 and state.failed == 0:
            self._seen.pop(state.key, None)
        else:
            self._seen[state.key] = state
        if state.changed_by != self._owner or abs(state.changed_at - now) > CHANGED:
            return None  # changed by another worker, or earlier
        if before is not None and (before.circuit, before.changed_at) == (
            state.circuit,
            state.changed_at,
        ):
            return None  # a second task of one call: announced already
        previous = _previous(before.circuit if before else Circuit.CLOSED, state.circuit)
        if previous is state.circuit:
            return None
        self._announce(state, previous)
        return state.circuit

    def _announce(self, state: BreakerState, previous: Circuit) -> None:
        group, subject = state.group, state.subject
        level = logging.WARNING if state.circuit is Circuit.OPEN else logging.INFO
        log.log(
            level,
            "breaker %s for %r in group %r: %s -> %s",
            "opened" if state.circuit is Circuit.OPEN else state.circuit.value,
            subject,
            group,
            previous.value,
            state.circuit.value,
            extra={"subject": subject, "group": group, "circuit": state.circuit.value},
        )
        self._emit(
            "atp_breaker_changed",
            group=group,
            subject=subject,
            circuit=state.circuit.value,
            previous=previous.value,
            at=state.changed_at,
        )


def _previous(seen: Circuit, now: Circuit) -> Circuit:
    """The circuit a call changed from, by what each call can change: ``probe`` turns
    open into half-open; ``observe`` closes a half-open one, or opens a closed or
    half-open one (a worker that last saw it open missed its half-open turn)."""
    if now is Circuit.HALF_OPEN:
        return Circuit.OPEN
    if now is Circuit.CLOSED:
        return Circuit.HALF_OPEN
    return Circuit.CLOSED if seen is Circuit.CLOSED else Circuit.HALF_OPEN


async def wake_breakers(
    flow: FlowLedger, ledger: BreakerLedger, waiting: dict[str, int], clock: Clock, *, limit: int
) -> int:
    """The sweep's part (``FlowSweep``): wake every task held by a breaker now closed,
    and one task of each breaker due a probe (open past its time, or half-open with a
    probe that ran out); return how many woke, at most about ``limit``."""
    lists = [name for name in waiting if name.startswith(BREAKER_PREFIX)]
    if not lists:
        return 0
    states = {state.key: state for state in await ledger.breakers()}
    now = clock.now()
    closed, due = [], []
    for name in lists:
        state = states.get(name[len(BREAKER_PREFIX) :])
        if state is None or state.circuit is Circuit.CLOSED:
            closed.append(name)
        elif _due_probe(state, now):
            due.append(name)
    woken = 0
    for name in due:
        woken += await flow.wake(await flow.unpark([name], limit=1), now=now)
    return woken + await wake_lists(flow, closed, clock, limit=limit)


def _due_probe(state: BreakerState, now: float) -> bool:
    if state.circuit is Circuit.OPEN:
        return state.open_until <= now
    return state.circuit is Circuit.HALF_OPEN and state.probe_until <= now
