"""The worker's side of flow control: admit claimed tasks, or hold them back unspent.

A claimed task runs only once the ledger admits it: its slots are free and its buckets
and windows allow it. A task refused, or of a paused subject, is handed back to the
store with its attempt refunded (``Outcome.refund``): by a bucket or window, due again
at the ``retry_at`` the ledger named; by a full slot or a pause, parked in a waiter list
with a far ``run_at`` (``BACKSTOP``), which a freed slot or a resume pulls forward to now
(``FlowLedger.wake``). The worker parks a task only after its hand-back is recorded, and
``park`` wakes it at once if the slot freed meanwhile, so no wake-up falls between the two.

Rules are read from the ledger once a second (``REFRESH``) off the fetch path: a limit
or pause set at run time reaches every worker within about a second.

Producers take slots too (``hold_at_publish``, ADR 0039): a due task whose slot is full
is created held and parked at once, so it waits in the store, where the ledger's wake
order (fair groups by weight, then priority with ageing) decides what runs next, rather
than in the transport's queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from atp.core.errors import AtpError
from atp.core.flow.circuits import Circuits
from atp.core.flow.rules import NO_GATES, Gates, Rules, pause_waiters, rank
from atp.core.model import State, Task
from atp.core.ports import Admission, Clock, FlowLedger, Held, Outcome, TaskStore, Wait

__all__ = ["BACKSTOP", "REFRESH", "Decision", "Gatekeeper", "Holding"]

log = logging.getLogger("atp.worker.flow")

REFRESH = 1.0
"""Seconds between two looks at the ledger's rules version."""
BACKSTOP = 600.0
"""Seconds a parked task waits at most before it is offered again, should every wake-up
be lost (the scheduler's sweep wakes it much sooner)."""


@dataclass(slots=True)
class Holding:
    """What ``hold_at_publish`` did to a batch: positions admitted (holding their slots)
    and positions held, with the waiter list each joins once created."""

    admitted: list[int] = field(default_factory=list)
    held: list[tuple[int, str]] = field(default_factory=list)
    due: dict[int, float] = field(default_factory=dict)
    """The ``run_at`` each held task was published with (it is stored at the backstop)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gatekeeper says of one claimed task."""

    slots: tuple[str, ...] = ()
    """Admitted: the slots it holds until it finishes; held back: the slots it gives back
    once handed back (a reserve it was woken with)."""
    hold: Outcome | None = None
    """Held back: the outcome that hands it back (SCHEDULED, refunded)."""
    park: str | None = None
    """Held back by a full slot or a pause: the waiter list it joins once handed back."""


RUN = Decision()


class Gatekeeper:
    """Admits one worker's claimed tasks against the shared ledger."""

    def __init__(
        self,
        store: TaskStore,
        clock: Clock,
        owner: str,
        *,
        reserve: float,
        circuits: Circuits | None = None,
    ) -> None:
        """``reserve``: how long a task woken here holds its slot on its way to a worker;
        ``circuits``: the worker's circuit breakers, screened before any other gate."""
        self._ledger = store if isinstance(store, FlowLedger) else None
        self._circuits = circuits if circuits is not None and circuits.active else None
        self._clock = clock
        self._owner = owner
        self._reserve = reserve
        self._rules = Rules()
        self._read_at = -math.inf

    @property
    def active(self) -> bool:
        return self._ledger is not None

    async def watch(self, stopping: asyncio.Event) -> None:
        """Keep the rules current until ``stopping`` is set."""
        if self._ledger is None:
            return
        while not stopping.is_set():
            try:
                await self.refresh()
            except AtpError as exc:
                log.warning("worker %s: reading flow rules failed: %s", self._owner, exc)
            await self._clock.wait(stopping, REFRESH)

    async def refresh(self) -> None:
        """Read the rules again if their version moved."""
        if self._ledger is None:
            return
        self._read_at = self._clock.now()
        if await self._ledger.rules_version() != self._rules.version:
            self._rules = await self._ledger.rules()
        if self._circuits is not None:
            await self._circuits.refresh()

    async def hold_at_publish(self, tasks: list[Task], slot_until: float) -> Holding:
        """Take the slots of the due tasks about to be created; those whose slot is full
        (or whose subject is paused) are created held instead: SCHEDULED at the backstop,
        parked by ``after_publish``, so they never wait in the transport (ADR 0039).

        Changes ``tasks`` in place (a held task's ``run_at``). Rules are read at most once
        a second here, on the way."""
        holding = Holding()
        if self._ledger is None:
            return holding
        now = self._clock.now()
        if now - self._read_at >= REFRESH:
            await self.refresh()
        asking: list[int] = []
        for i, task in enumerate(tasks):
            gate = self.gates(task)
            if task.run_at > now or gate is NO_GATES:
                continue
            if gate.paused:
                holding.held.append((i, pause_waiters(task.subject)))
            elif gate.slots:
                asking.append(i)
        if asking:
            requests = [
                Admission(tasks[i].id, Gates(slots=self.gates(tasks[i]).slots), slot_until)
                for i in asking
            ]
            for i, verdict in zip(asking, await self._ledger.admit(requests, now=now), strict=True):
                if verdict.admitted:
                    holding.admitted.append(i)
                else:
                    holding.held.append((i, verdict.wait_for or ""))
        for i, _ in holding.held:
            holding.due[i] = tasks[i].run_at
            tasks[i] = tasks[i].replace(run_at=now + BACKSTOP)
        return holding

    async def after_publish(
        self, tasks: Sequence[Task], holding: Holding, created: Sequence[bool]
    ) -> None:
        """Park the held tasks that were created, give back the slots of admitted tasks
        that were not (an idempotency key matched), and wake what that frees. Never
        raises: a held task not parked is offered again at its backstop."""
        if self._ledger is None or not (holding.held or holding.admitted):
            return
        waits = [self.wait(name, tasks[i]) for i, name in holding.held if created[i]]
        unused = [
            Held(tasks[i].id, tuple(s.name for s in self.gates(tasks[i]).slots))
            for i in holding.admitted
            if not created[i]
        ]
        await self.settle(unused, waits)

    def gates(self, task: Task) -> Gates:
        """The gates of ``task``, NO_GATES where flow control has nothing to say."""
        if self._ledger is None:
            return NO_GATES
        if self._rules.empty and task.concurrency_key is None and task.rate_key is None:
            return NO_GATES
        return self._rules.gates(task)

    async def decide(self, tasks: Sequence[Task], lease_until: float) -> list[Decision]:
        """One decision per task, with one ledger call for all that need one (and one
        more for tasks of a breaker not closed)."""
        tripped = await self._circuits.screen(tasks, lease_until) if self._circuits else {}
        gates = [NO_GATES if i in tripped else self.gates(task) for i, task in enumerate(tasks)]
        if not tripped and all(g is NO_GATES or g.empty for g in gates):
            return [RUN] * len(tasks)
        now = self._clock.now()
        decisions: list[Decision] = [RUN] * len(tasks)
        asking: list[int] = []
        for i, (task, gate) in enumerate(zip(tasks, gates, strict=True)):
            if i in tripped:
                decisions[i] = self._held(task, now, park=tripped[i])
            elif gate.paused:
                decisions[i] = self._held(task, now, park=pause_waiters(task.subject))
            elif gate.slots or gate.buckets or gate.windows:
                asking.append(i)
        if asking:
            assert self._ledger is not None
            requests = [Admission(tasks[i].id, gates[i], lease_until) for i in asking]
            verdicts = await self._ledger.admit(requests, now=now)
            for i, verdict in zip(asking, verdicts, strict=True):
                if verdict.admitted:
                    decisions[i] = Decision(slots=tuple(s.name for s in gates[i].slots))
                elif verdict.wait_for is not None:
                    decisions[i] = self._held(tasks[i], now, park=verdict.wait_for)
                else:
                    decisions[i] = self._held(tasks[i], now, until=verdict.retry_at or now)
        return decisions

    def retry_soon(self, task: Task) -> Decision:
        """Hand ``task`` back to be offered again in a second (the ledger did not answer)."""
        now = self._clock.now()
        return self._held(task, now, until=now + REFRESH)

    def _held(
        self, task: Task, now: float, *, park: str | None = None, until: float | None = None
    ) -> Decision:
        run_at = until if park is None and until is not None else now + BACKSTOP
        outcome = Outcome(task.id, self._owner, State.SCHEDULED, now, run_at=run_at, refund=True)
        # A task woken from a waiter list holds that slot on its way here: handed back,
        # it gives every slot it may hold back, rather than sit on it for the reserve.
        slots = tuple(slot.name for slot in self.gates(task).slots)
        return Decision(slots=slots, hold=outcome, park=park)

    def wait(self, name: str, task: Task) -> Wait:
        """``task`` joining waiter list ``name``: its group, the group's weight, its rank."""
        group = task.group_key
        return Wait(name, task.id, group or "", self._rules.weight(group), rank(task))

    async def extend(self, held: Sequence[Held], until: float) -> None:
        """Extend the slots of running tasks with their leases; never raises: the next
        heartbeat tries again, well before the slots run out."""
        if not held or self._ledger is None:
            return
        try:
            await self._ledger.extend(held, until=until)
        except AtpError as exc:
            log.warning("worker %s: extending %d slots failed: %s", self._owner, len(held), exc)

    async def settle(self, released: Sequence[Held], parked: Sequence[Wait]) -> None:
        """After outcomes are recorded: give back the slots of finished tasks and park the
        tasks handed back, then wake whatever that frees. Never raises: the scheduler's
        sweep and slot leases make up for a failure here, a little later."""
        if self._ledger is None or not (released or parked):
            return
        now = self._clock.now()
        try:
            reserve = self._reserve
            woken = (
                await self._ledger.release_slots(released, now=now, reserve=reserve)
                if released
                else []
            )
            if parked:
                woken += await self._ledger.park(parked, now=now, reserve=reserve)
            if woken:
                await self._ledger.wake(woken, now=now)
        except AtpError as exc:
            log.warning(
                "worker %s: settling %d slots and %d held tasks failed, the sweep takes them: %s",
                self._owner,
                len(released),
                len(parked),
                exc,
            )
