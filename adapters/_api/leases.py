"""Remote consumers: tasks leased to a caller over a stream, and their ack, nack, heartbeat.

A stream consumes the transport as a group, claims each delivery in the store for the
stream's lease id (the store's lease owner) and acks the transport message: from then on
the store's lease is the only one, so ``ack``, ``nack`` and ``heartbeat`` work from any
server process, and a lease that runs out is recovered by the scheduler's reaper like a
dead worker's. When a stream ends, the tasks it still holds are given back at once: if
the consumer went away, each has spent its attempt (a task that kills every consumer it
reaches ends DEAD after ``max_attempts``, as one that kills in-process workers does); if
the server stopped or failed the stream, the attempt is refunded.
A workflow step's task settled final by ``ack`` or ``nack`` advances its run at once, as
a worker does after recording an outcome.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from atp.adapters._auth.guard import Principal
from atp.core.errors import (
    AtpError,
    Fail,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Retry,
    StateConflict,
)
from atp.core.model import FINAL_STATES, JSON, State, Task, TaskRecord
from atp.core.platform import Platform
from atp.core.ports import Consumer, Delivery, LeaseStatus, Outcome
from atp.core.subjects import validate_pattern
from atp.core.worker.outcomes import Policy
from atp.core.workflows.engine import StepListener

__all__ = ["Leased", "RemoteLeases"]

log = logging.getLogger("atp.leases")

FETCH_WAIT = 1.0
"""Seconds one fetch waits for tasks before the stream looks around again."""
RECHECK = 2.0
"""Seconds a full stream waits before asking the store which of its tasks were finished."""
MAX_IN_FLIGHT = 1000
MAX_LEASE = 3600.0
CONSUMER_GONE = "the consumer disconnected while holding the task"
"""The ``lease`` error of a task given back because its stream ended under it."""
_GROUP = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class Leased:
    """One task leased to a remote consumer until ``lease_until``."""

    record: TaskRecord
    lease_id: str
    lease_until: float


@dataclass(eq=False)
class _Stream:
    owner: str
    held: set[str] = field(default_factory=set)
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self, task_id: str) -> None:
        self.held.discard(task_id)
        self.room.set()


class RemoteLeases:
    """Serves every remote consumer of one server process."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._clock = platform.clock
        self._streams: dict[str, _Stream] = {}
        self._closing = False
        self._steps = StepListener(platform)

    async def retrieve(
        self, who: Principal, pattern: str, group: str, max_in_flight: int, lease: float | None
    ) -> AsyncGenerator[Leased, None]:
        """Lease tasks of ``pattern`` to the caller, at most ``max_in_flight`` unfinished."""
        validate_pattern(pattern)
        who.scopes.require_consume(pattern)
        if not _GROUP.match(group):
            raise InvalidInput(f"group {group!r} must be 1 to 64 of [A-Za-z0-9_-]")
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise InvalidInput(f"max_in_flight must be 1 to {MAX_IN_FLIGHT}, got {max_in_flight}")
        seconds = self._lease(lease)
        stream = _Stream(f"remote:{who.id}:{uuid.uuid4().hex}")
        consumer = await self._platform.transport.consume(pattern, group)
        self._streams[stream.owner] = stream
        consumer_left = True  # unless the server ends the stream
        try:
            while not self._closing:
                room = max_in_flight - len(stream.held)
                if room <= 0:
                    await self._wait_for_room(stream)
                    continue
                for leased in await self._take(consumer, stream, room, seconds):
                    yield leased
        except Exception:
            consumer_left = False
            raise
        finally:
            del self._streams[stream.owner]
            await self._give_back(stream, spent=consumer_left and not self._closing)
            await consumer.close()

    async def close(self) -> None:
        """End every stream: give their unsettled tasks back now, fetch nothing more.

        Called when the server stops, before the platform closes, so no task waits out
        a lease because its server went away.
        """
        self._closing = True
        for stream in list(self._streams.values()):
            await self._give_back(stream, spent=False)
            stream.room.set()

    async def ack(self, who: Principal, task_id: str, lease_id: str, result: JSON) -> None:
        """Record the attempt as SUCCEEDED; StateConflict if the lease is no longer held."""
        record = await self._subject_checked(who, [task_id])
        policy = Policy(self._platform.settings, lease_id, random.Random())
        outcome = policy.success(record[0].task, result, self._clock.now())
        if outcome.error is not None:  # refused, so the caller may ack with less
            raise PayloadTooLarge(f"result refused: {outcome.error.message}")
        await self._finish(outcome)
        self._platform.emit("atp_task_succeeded", record=record[0], duration=0.0)
        await self._step_finished(record[0].task, outcome.state)

    async def nack(
        self,
        who: Principal,
        task_id: str,
        lease_id: str,
        *,
        delay: float | None,
        error: str,
        terminate: bool,
    ) -> State:
        """Record a failed attempt: SCHEDULED after ``delay`` (the task's backoff if None),
        DEAD when ``terminate`` or no attempt is left. Returns the new state."""
        if delay is not None and not (math.isfinite(delay) and delay >= 0):
            raise InvalidInput(f"delay must be a finite number of seconds >= 0, got {delay}")
        if delay is not None and delay > self._platform.settings.max_delay:
            raise InvalidInput(f"delay of {delay:g}s is over the max_delay limit")
        (record,) = await self._subject_checked(who, [task_id])
        signal: Exception = Fail(error) if terminate else Retry(delay, error or "nacked")
        policy = Policy(self._platform.settings, lease_id, random.Random())
        outcome = policy.failure(record.task, None, signal, "error", self._clock.now())
        await self._finish(outcome)
        await self._step_finished(record.task, outcome.state)
        return outcome.state

    async def heartbeat(
        self, who: Principal, task_ids: Sequence[str], lease_id: str, lease: float | None
    ) -> list[LeaseStatus]:
        """Extend the caller's leases; CANCEL_REQUESTED asks it to stop that task."""
        await self._subject_checked(who, task_ids)
        until = self._clock.now() + self._lease(lease)
        return await self._platform.store.heartbeat(task_ids, owner=lease_id, lease_until=until)

    # -- internals ---------------------------------------------------------------------

    async def _step_finished(self, task: Task, state: State) -> None:
        """Advance the task's workflow run now; never raises (the sweep backs it up)."""
        if task.workflow_run is not None and state in FINAL_STATES:
            await self._steps.finished(task)

    def _lease(self, lease: float | None) -> float:
        seconds = self._platform.settings.lease if lease is None else lease
        if not (math.isfinite(seconds) and 1 <= seconds <= MAX_LEASE):
            raise InvalidInput(f"lease must be 1 to {MAX_LEASE:g} seconds, got {seconds}")
        return float(seconds)

    async def _subject_checked(self, who: Principal, task_ids: Sequence[str]) -> list[TaskRecord]:
        if not task_ids or len(task_ids) > MAX_IN_FLIGHT:
            raise InvalidInput(f"give 1 to {MAX_IN_FLIGHT} task ids")
        found = await self._platform.store.get(list(task_ids))
        records = []
        for task_id, record in zip(task_ids, found, strict=True):
            if record is None:
                raise NotFound(f"no task with id {task_id!r}")
            who.scopes.require_consume_subject(record.subject)
            records.append(record)
        return records

    async def _finish(self, outcome: Outcome) -> None:
        (applied,) = await self._platform.store.finish([outcome])
        if not applied:
            raise StateConflict(
                f"task {outcome.task_id!r} is not leased to {outcome.owner!r}: its lease ran "
                "out, it was cancelled, or it finished"
            )
        stream = self._streams.get(outcome.owner)
        if stream is not None:
            stream.release(outcome.task_id)

    async def _take(
        self, consumer: Consumer, stream: _Stream, room: int, seconds: float
    ) -> list[Leased]:
        deliveries = await consumer.fetch(room, FETCH_WAIT)
        if not deliveries:
            return []
        if self._closing:  # not claimed: the transport redelivers them
            await consumer.nack(deliveries)
            return []
        now = self._clock.now()
        until = now + seconds
        try:
            claims = await self._platform.store.claim(
                [d.task_id for d in deliveries], owner=stream.owner, now=now, lease_until=until
            )
        except AtpError as exc:
            log.warning("claiming %d tasks for %s failed: %s", len(deliveries), stream.owner, exc)
            await consumer.nack(deliveries, delay=1.0)
            return []
        leased, unknown, spent = [], [], []
        policy = Policy(self._platform.settings, stream.owner, random.Random())
        for delivery, claim in zip(deliveries, claims, strict=True):
            if claim.claimed and claim.record is not None:
                dead = policy.spent(claim.record.task, None, now)  # past max_attempts: unrun
                if dead is not None:
                    spent.append(dead)
                    continue
                stream.held.add(delivery.task_id)
                leased.append(Leased(claim.record, stream.owner, until))
            elif claim.record is None:
                unknown.append(delivery)
        await _settle(consumer, deliveries, unknown)
        await self._bury(spent)
        for item in leased:
            self._platform.emit("atp_task_started", task=item.record.task, worker=stream.owner)
        return leased

    async def _bury(self, outcomes: list[Outcome]) -> None:
        """Record DEAD the tasks claimed past their attempts (their consumers died)."""
        if not outcomes:
            return
        try:
            await self._platform.store.finish(outcomes)
        except AtpError as exc:  # the reaper recovers them after their lease
            log.warning("recording %d spent tasks failed: %s", len(outcomes), exc)

    async def _wait_for_room(self, stream: _Stream) -> None:
        stream.room.clear()
        if await self._clock.wait(stream.room, RECHECK):
            return
        records = await self._platform.store.get(sorted(stream.held))
        for task_id, record in zip(sorted(stream.held), records, strict=True):
            if (
                record is None
                or record.state is not State.RUNNING
                or (record.lease_owner != stream.owner)
            ):
                stream.held.discard(task_id)

    async def _give_back(self, stream: _Stream, *, spent: bool) -> None:
        """Return the stream's unsettled tasks; ``spent``: their attempts count."""
        if not stream.held:
            return
        held, stream.held = sorted(stream.held), set()
        policy = Policy(self._platform.settings, stream.owner, random.Random())
        now = self._clock.now()
        records = await self._platform.store.get(held)
        outcomes = [_given_back(policy, r, now, spent) for r in records if r is not None]
        try:
            await self._platform.store.finish(outcomes)
        except AtpError as exc:  # the reaper recovers them after their lease
            log.warning("giving back %d tasks of %s failed: %s", len(outcomes), stream.owner, exc)


def _given_back(policy: Policy, record: TaskRecord, now: float, spent: bool) -> Outcome:
    """CANCELLED if a cancel was asked for; else SCHEDULED to run now, or DEAD when
    ``spent`` and the task has no attempt left."""
    if record.cancel_requested:
        return policy.cancelled(record.task, now)
    if not spent:
        return policy.interrupted(record.task, now, "the server stopped the stream", "shutdown")
    return policy.failure(record.task, None, Retry(0.0, CONSUMER_GONE), "lease", now)


async def _settle(consumer: Consumer, deliveries: list[Delivery], unknown: list[Delivery]) -> None:
    """Ack every delivery but the unknown ones (terminated): the store holds the lease."""
    known = [d for d in deliveries if d not in unknown]
    try:
        if known:
            await consumer.ack(known)
        if unknown:
            await consumer.terminate(unknown, "unknown task id: not in the task store")
    except AtpError as exc:  # a redelivery is dropped at claim
        log.warning("acking %d deliveries failed: %s", len(deliveries), exc)
