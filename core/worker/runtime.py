"""The worker: consumes subjects, claims tasks in the store, runs handlers, records outcomes.

One fetch loop per subscribed pattern, one heartbeat loop for every running task, one
deadline sweep for every attempt's timeout, and a batcher that records outcomes in one
store call per batch. Async handlers run on the loop, sync handlers in a thread pool; both
are bounded by ``concurrency``. Where the transport is fused with the store
(``ClaimingConsumer``), fetch + claim and finish + ack are one call each (ADR 0023).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeGuard

from atp.core.batching import Batcher
from atp.core.context import set_current_task
from atp.core.errors import AtpError, BackendUnavailable, InvalidInput
from atp.core.flow.admission import RUN, Decision, Gatekeeper
from atp.core.flow.circuits import Circuits
from atp.core.handlers import Handler, HandlerRegistry
from atp.core.ids import process_name
from atp.core.model import FINAL_STATES, JSON, State, Task, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import Lifecycle
from atp.core.ports import (
    ClaimingConsumer,
    Consumer,
    Delivery,
    Held,
    LeaseStatus,
    Outcome,
    Wait,
)
from atp.core.service import TaskService
from atp.core.skew import SkewGuard
from atp.core.worker.deadlines import Deadlines
from atp.core.worker.interceptors import HandlerCall, Interceptor, chain
from atp.core.worker.outcomes import Policy, log_failure
from atp.core.worker.presence import Presence
from atp.core.workflows.engine import StepListener

__all__ = ["Worker"]

log = logging.getLogger("atp.worker")

FETCH_WAIT = 1.0
"""Seconds a fetch waits for the first task before the loop looks around again."""
FINISH_RETRIES = (0.1, 0.5, 2.0)
"""Pauses between attempts to record outcomes while the store is unavailable."""
NO_HANDLER_DELAY = 60.0
"""Seconds before a task with no handler in this worker is offered again."""
_OUTCOME_HOOKS: tuple[Lifecycle, ...] = (
    "atp_task_succeeded",
    "atp_task_failed",
    "atp_task_cancelled",
    "atp_task_dead",
)


@dataclass(eq=False)
class _Running:
    """One attempt in flight."""

    delivery: Delivery
    consumer: Consumer
    task: Task
    handler: Handler | None
    job: asyncio.Task[None] | None = None
    timeout: float = 0.0
    stop_reason: str | None = None
    started: float | None = None
    """When the handler was called; None until it is."""
    in_handler: bool = False
    raised: BaseException | None = None
    """The handler's exception, kept only until its failure is logged."""
    slots: tuple[str, ...] = ()
    """The flow-control slots this attempt holds (ADR 0038), given back when it ends."""
    park: str | None = None
    """Held back by flow control: the waiter list it joins once handed back."""

    def stop(self, reason: str) -> None:
        """Cancel the handler for ``reason`` (timeout, cancel, lost, shutdown), once.

        Only while the handler runs: an outcome being recorded is never interrupted.
        """
        if self.stop_reason is None and self.job is not None and self.in_handler:
            self.stop_reason = reason
            self.job.cancel()


class Worker:
    """Runs the handlers of ``registry`` for the tasks of its subject patterns."""

    def __init__(
        self,
        platform: Platform,
        registry: HandlerRegistry,
        *,
        name: str | None = None,
        patterns: Sequence[str] | None = None,
        group: str | None = None,
        concurrency: int | None = None,
        interceptors: Sequence[Interceptor] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        settings = platform.settings
        self.name = name or process_name()
        self.patterns = list(patterns or _default_patterns(registry, settings.subjects))
        self.group = group or settings.group
        self.concurrency = concurrency or settings.concurrency
        self._platform = platform
        self._registry = registry
        self._clock = platform.clock
        self._settings = settings
        self._policy = Policy(settings, self.name, rng or random.Random())
        self._call = chain(list(interceptors or _plugin_interceptors(platform)), self._invoke)
        self._running: dict[str, _Running] = {}
        self._fused_consumers: dict[Consumer, bool] = {}
        self._free = self.concurrency
        self._waiting = 0
        """Loops holding a fetched task until a slot is free."""
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._finisher: Batcher[tuple[_Running, Outcome]] = Batcher(self._record)
        self._deadlines: Deadlines[_Running] = Deadlines(self._clock, _time_out)
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="atp-handler")
        self._steps = StepListener(platform)
        self._tasks = TaskService(platform)  # handlers' follow-ups (atp.sdk.context())
        self._circuits = Circuits(
            platform.store,
            self._clock,
            registry,
            group=self.group,
            owner=self.name,
            emit=platform.emit,
        )
        self._gate = Gatekeeper(
            platform.store, self._clock, self.name, reserve=settings.lease, circuits=self._circuits
        )
        # A clock off the store's stamps leases others misjudge: take nothing (ADR 0029).
        self._skew = SkewGuard(
            platform.store, self._clock, settings.max_clock_skew, f"worker {self.name}"
        )
        self._presence = Presence(platform, self)
        emit = platform.emit
        self._emits_started = emit.wants("atp_task_started")
        self._emits_outcomes = any(emit.wants(hook) for hook in _OUTCOME_HOOKS)

    @property
    def idle(self) -> bool:
        """True when no attempt runs and no outcome waits to be recorded."""
        return not self._running and self._finisher.idle

    @property
    def running(self) -> list[Task]:
        """The tasks whose attempts are in flight."""
        return [running.task for running in self._running.values()]

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain: wait for running handlers up to
        ``drain_timeout``, put the rest back without counting their attempt, and close."""
        self._platform.check_worker(self._registry)
        consumers = [
            await self._platform.transport.consume(pattern, self.group) for pattern in self.patterns
        ]
        self._platform.emit(
            "atp_worker_started", worker=self.name, patterns=self.patterns, group=self.group
        )
        await self._skew.check("take tasks")
        await self._gate.refresh()
        fetchers = [asyncio.create_task(self._fetch_loop(consumer)) for consumer in consumers]
        helpers = [
            asyncio.create_task(
                self._skew.run(self._stopping, self._settings.heartbeat, "take tasks")
            ),
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._deadlines.run()),
            asyncio.create_task(self._gate.watch(self._stopping)),
        ]
        presence = asyncio.create_task(self._presence.run(self._stopping))  # withdraws at stop
        try:
            await stop.wait()
        finally:
            self._stopping.set()
            await _cancel(fetchers)
            await self._drain()
            await _cancel(helpers)
            await presence
            await _close(consumers)
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._platform.emit("atp_worker_stopped", worker=self.name)

    # -- fetching and claiming ---------------------------------------------------------

    async def _fetch_loop(self, consumer: Consumer) -> None:
        """Fetch for one pattern; concurrency stays bounded and no pattern starves another.

        A busy loop reserves the free slots, leaving one for each loop that holds a task
        waiting for a slot, and takes what is there without waiting. An idle loop waits
        for work without holding a slot, so any number of patterns can wait at once; a
        task it gets waits for the next free slot, ahead of the busy loops.
        """
        hungry = True
        while not self._stopping.is_set():
            await asyncio.sleep(0)  # let loops woken by a freed slot take it first
            if not self._skew.in_bounds:
                await self._clock.wait(self._stopping, self._settings.heartbeat)
                continue
            try:
                if hungry:
                    hungry = await self._fetch_reserved(consumer)
                else:
                    hungry = await self._fetch_one(consumer)
            except Exception:  # a loop that ended would leave its pattern unserved
                log.exception("worker %s: fetching crashed, retrying", self.name)
                await self._clock.sleep(1.0)

    async def _fetch_reserved(self, consumer: Consumer) -> bool:
        """Reserve slots, take up to that many without waiting, start them; return whether
        any came (if none did, the loop goes back to waiting without a slot)."""
        reserved = self._free - self._waiting
        if reserved <= 0:
            await self._wait_for_slot()
            return True
        self._free -= reserved
        started = 0
        try:
            if self._fused(consumer):
                started = await self._take_claimed(consumer, reserved)
                return started > 0
            deliveries = await consumer.fetch(reserved, 0.0)
            started = await self._admit(consumer, deliveries) if deliveries else 0
            return bool(deliveries)
        except AtpError as exc:
            log.warning("worker %s: fetching failed, retrying: %s", self.name, exc)
            await self._clock.sleep(1.0)
            return True
        finally:
            self._release(reserved - started)

    async def _fetch_one(self, consumer: Consumer) -> bool:
        """Wait for one task without holding a slot, then for a slot to start it."""
        try:
            deliveries = await consumer.fetch(1, FETCH_WAIT)
        except AtpError as exc:
            log.warning("worker %s: fetching failed, retrying: %s", self.name, exc)
            await self._clock.sleep(1.0)
            return False
        if not deliveries:
            return False
        self._waiting += 1
        try:
            while self._free <= 0:
                await self._wait_for_slot()
        finally:
            self._waiting -= 1
        self._free -= 1
        started = 0
        try:
            started = await self._admit(consumer, deliveries)
        finally:
            self._release(1 - started)
        return True

    async def _wait_for_slot(self) -> None:
        self._slot_freed.clear()
        await self._clock.wait(self._slot_freed, FETCH_WAIT)

    def _release(self, slots: int) -> None:
        self._free += slots
        if slots > 0:
            self._slot_freed.set()

    def _fused(self, consumer: Consumer) -> TypeGuard[ClaimingConsumer]:
        """Whether ``consumer`` fetches and claims in one call; asked once per consumer,
        since a Protocol check costs more than a batch of tasks."""
        fused = self._fused_consumers.get(consumer)
        if fused is None:
            fused = self._fused_consumers[consumer] = isinstance(consumer, ClaimingConsumer)
        return fused

    async def _take_claimed(self, consumer: ClaimingConsumer, reserved: int) -> int:
        """Fetch and claim in one call; only claimed deliveries come back."""
        pairs = await consumer.fetch_claimed(
            reserved, 0.0, owner=self.name, lease=self._settings.lease
        )
        claimed = [
            (delivery, claim.record)
            for delivery, claim in pairs
            if claim.record is not None and delivery.task_id not in self._running
        ]
        return await self._begin(consumer, claimed)

    async def _admit(self, consumer: Consumer, deliveries: list[Delivery]) -> int:
        now = self._clock.now()
        ids = [delivery.task_id for delivery in deliveries]
        try:
            claims = await self._platform.store.claim(
                ids, owner=self.name, now=now, lease_until=now + self._settings.lease
            )
        except AtpError as exc:
            log.warning("worker %s: claiming %d tasks failed: %s", self.name, len(ids), exc)
            try:
                await consumer.nack(deliveries, delay=1.0)
            except AtpError as nack_exc:  # they come back after the transport's lease
                log.warning(
                    "worker %s: handing back %d tasks failed: %s", self.name, len(ids), nack_exc
                )
            return 0
        claimed: list[tuple[Delivery, TaskRecord]] = []
        skipped, unknown = [], []
        for delivery, claim in zip(deliveries, claims, strict=True):
            if claim.claimed and claim.record is not None and delivery.task_id not in self._running:
                claimed.append((delivery, claim.record))
            elif claim.record is None:
                unknown.append(delivery)
            else:
                skipped.append(delivery)  # a duplicate, or finished or cancelled meanwhile
        started = await self._begin(consumer, claimed)
        try:
            await self._settle(consumer, skipped, unknown)
        except AtpError as exc:  # they come back after their lease and are dropped again
            log.warning("worker %s: acking duplicates failed: %s", self.name, exc)
        return started

    async def _settle(
        self, consumer: Consumer, skipped: list[Delivery], unknown: list[Delivery]
    ) -> None:
        if skipped:
            await consumer.ack(skipped)
        if unknown:
            log.error("worker %s: %d deliveries name no stored task", self.name, len(unknown))
            await consumer.terminate(unknown, "unknown task id: not in the task store")

    async def _begin(self, consumer: Consumer, claimed: list[tuple[Delivery, TaskRecord]]) -> int:
        """Start the claimed tasks flow control admits and hand the others back (each
        holds a worker slot until its hand-back is recorded); return how many there were."""
        if not claimed:
            return 0
        decisions = await self._decide([record.task for _, record in claimed])
        for (delivery, record), decision in zip(claimed, decisions, strict=True):
            if decision.hold is None:
                self._start(consumer, delivery, record, decision.slots)
            else:
                self._hold(consumer, delivery, record, decision)
        return len(claimed)

    async def _decide(self, tasks: list[Task]) -> list[Decision]:
        if not self._gate.active:
            return [RUN] * len(tasks)
        lease_until = self._clock.now() + self._settings.lease
        try:
            return await self._gate.decide(tasks, lease_until)
        except AtpError as exc:  # without the ledger no limit can be kept: try again soon
            log.warning("worker %s: flow admission failed, handing back: %s", self.name, exc)
            return [self._gate.retry_soon(task) for task in tasks]

    def _hold(
        self, consumer: Consumer, delivery: Delivery, record: TaskRecord, decision: Decision
    ) -> None:
        task = record.task
        running = _Running(delivery, consumer, task, None, park=decision.park)
        running.slots = decision.slots
        self._running[task.id] = running
        assert decision.hold is not None
        self._finisher.add((running, decision.hold))

    def _start(
        self,
        consumer: Consumer,
        delivery: Delivery,
        record: TaskRecord,
        slots: tuple[str, ...] = (),
    ) -> None:
        task = record.task
        running = _Running(delivery, consumer, task, self._registry.resolve(task.subject))
        running.slots = slots
        self._running[task.id] = running
        loop = asyncio.get_running_loop()  # its create_task names the task without a detour
        running.job = loop.create_task(self._execute(running), name=f"atp-task-{task.id}")

    # -- running one attempt -----------------------------------------------------------

    async def _execute(self, running: _Running) -> None:
        """Run one attempt and hand its outcome to the finisher, which frees the slot once
        it is recorded (the lease is kept alive until then)."""
        outcome = None
        try:
            outcome = await self._attempt(running)
        except GeneratorExit as exc:  # thrown in from a future, it closed the handler's frames
            outcome = self._failed(running, exc)
        finally:
            if outcome is None:
                self._forget(running)
            else:
                raised, running.raised = running.raised, None  # its frames are not kept
                self._finisher.add((running, outcome))
                log_failure(self.name, running.task, outcome, raised)

    def _failed(self, running: _Running, exc: BaseException) -> Outcome:
        """The outcome of an attempt whose handler raised ``exc``, kept for the log."""
        running.raised = exc
        now = self._clock.now()
        return self._policy.failure(
            running.task, running.handler, exc, "error", now, running.started
        )

    def _forget(self, running: _Running) -> None:
        del self._running[running.task.id]
        self._release(1)

    async def _attempt(self, running: _Running) -> Outcome | None:
        task, handler = running.task, running.handler
        now = self._clock.now()
        if handler is None:
            message = f"no handler for subject {task.subject!r} in worker {self.name}"
            return self._policy.interrupted(task, now, message, "no-handler", NO_HANDLER_DELAY)
        spent = self._policy.spent(task, handler, now)
        if spent is not None:
            return spent
        try:
            args, kwargs = handler.arguments(task)
        except InvalidInput as exc:
            return self._policy.invalid(task, exc, now)
        timeout = running.timeout = self._policy.timeout(task, handler)
        call = HandlerCall(task, handler, self.name, timeout, args, kwargs)
        self._deadlines.add(running, timeout)
        set_current_task(task, self._tasks)
        running.started = self._clock.now()
        if self._emits_started:
            self._platform.emit("atp_task_started", task=task, worker=self.name)
        running.in_handler = True
        try:
            result = await self._call(call)
        except asyncio.CancelledError as exc:
            if running.stop_reason is not None:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                return self._stopped(running, timeout)
            if _cancel_requested():
                raise  # the worker itself is being torn down
            return self._failed(running, exc)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: this attempt's only
            return self._failed(running, exc)
        finally:
            running.in_handler = False
            self._deadlines.remove(running, timeout)
        return self._policy.success(task, result, self._clock.now())

    def _stopped(self, running: _Running, timeout: float) -> Outcome | None:
        task, now, started = running.task, self._clock.now(), running.started
        if running.stop_reason == "timeout":
            error = TimeoutError(f"attempt timed out after {timeout:g}s")
            return self._policy.failure(task, running.handler, error, "timeout", now, started)
        if running.stop_reason == "cancel":
            return self._policy.cancelled(task, now, started)
        if running.stop_reason == "shutdown":
            message = "worker shut down"
            return self._policy.interrupted(task, now, message, "shutdown", started=started)
        log.warning("worker %s: lease of task %s was lost; not recording", self.name, task.id)
        return None

    async def _invoke(self, call: HandlerCall) -> JSON:
        fn = call.handler.fn
        if call.handler.is_async:
            return await fn(*call.args, **call.kwargs)
        context = contextvars.copy_context()
        bound = functools.partial(context.run, fn, *call.args, **call.kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._threads, bound)

    # -- recording outcomes ------------------------------------------------------------

    async def _record(self, items: list[tuple[_Running, Outcome]]) -> None:
        """Record a batch of outcomes (the finisher's flush), then free their slots."""
        try:
            applied = await self._settle_outcomes(items)
        except AtpError as exc:
            log.error(
                "worker %s: %d outcomes not recorded, they run again after their lease: %s",
                self.name,
                len(items),
                exc,
            )
            applied = [False] * len(items)
        finally:
            for running, _ in items:
                self._forget(running)
        steps = []
        released: list[Held] = []
        parked: list[Wait] = []
        ran: list[tuple[Task, Outcome]] = []
        for (running, outcome), ok in zip(items, applied, strict=True):
            if not ok:
                log.warning(
                    "worker %s: task %s was taken over; outcome dropped", self.name, running.task.id
                )
                continue
            if running.slots:
                released.append(Held(running.task.id, running.slots))
            if running.park is not None:
                parked.append(self._gate.wait(running.park, running.task))
            elif running.handler is not None:
                ran.append((running.task, outcome))
            self._announce(running, outcome)
            if running.task.workflow_run is not None and outcome.state in FINAL_STATES:
                steps.append(self._steps.finished(running.task))
        await self._gate.settle(released, parked)
        await self._circuits.record(ran)
        if steps:  # never raise; the workflow sweep backs them up
            await asyncio.gather(*steps)

    async def _settle_outcomes(self, items: list[tuple[_Running, Outcome]]) -> list[bool]:
        """finish + ack: one call per fused consumer, one store call for the rest."""
        by_consumer: dict[Consumer, list[int]] = defaultdict(list)
        for i, (running, _) in enumerate(items):
            by_consumer[running.consumer].append(i)
        applied = [False] * len(items)
        plain: list[int] = []
        for consumer, indexes in by_consumer.items():
            if not self._fused(consumer):
                plain += indexes
                continue
            outcomes = [items[i][1] for i in indexes]
            deliveries = [items[i][0].delivery for i in indexes]
            finish = functools.partial(consumer.finish_and_ack, outcomes, deliveries)
            done = await self._retried(finish)
            for i, ok in zip(indexes, done, strict=True):
                applied[i] = ok
        if plain:
            outcomes = [items[i][1] for i in plain]
            done = await self._retried(functools.partial(self._platform.store.finish, outcomes))
            for i, ok in zip(plain, done, strict=True):
                applied[i] = ok
            await self._ack([items[i][0] for i, ok in zip(plain, done, strict=True) if ok])
        return applied

    async def _ack(self, finished: list[_Running]) -> None:
        by_consumer: dict[Consumer, list[Delivery]] = defaultdict(list)
        for running in finished:
            by_consumer[running.consumer].append(running.delivery)
        for consumer, deliveries in by_consumer.items():
            try:
                await consumer.ack(deliveries)
            except AtpError as exc:  # recorded in the store; a redelivery is dropped at claim
                log.warning(
                    "worker %s: ack of %d deliveries failed: %s", self.name, len(deliveries), exc
                )

    async def _retried(self, record: Callable[[], Awaitable[list[bool]]]) -> list[bool]:
        """Record outcomes, tried again over a short outage: an outcome given up on means
        the task runs once more after its lease, which is worth a wait."""
        for pause in FINISH_RETRIES:
            try:
                return await record()
            except BackendUnavailable as exc:
                log.warning(
                    "worker %s: recording outcomes failed, retrying in %gs: %s",
                    self.name,
                    pause,
                    exc,
                )
                await self._clock.sleep(pause)
        return await record()

    def _announce(self, running: _Running, outcome: Outcome) -> None:
        if not self._emits_outcomes:
            return
        emit = self._platform.emit
        record = _seen(running.task, outcome)
        started = running.started
        duration = max(outcome.at - started, 0.0) if started is not None else 0.0
        if outcome.state is State.SUCCEEDED:
            emit("atp_task_succeeded", record=record, duration=duration)
        elif outcome.state is State.CANCELLED:
            emit("atp_task_cancelled", record=record)
        elif outcome.error is not None and outcome.error.kind not in ("shutdown", "no-handler"):
            will_retry = outcome.state is State.SCHEDULED
            error = outcome.error.message
            emit(
                "atp_task_failed",
                record=record,
                error=error,
                will_retry=will_retry,
                duration=duration,
            )
            if not will_retry:
                emit("atp_task_dead", record=record, reason=error)

    # -- leases and shutdown -----------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._clock.sleep(self._settings.heartbeat)
            try:
                await self._beat()
            except AtpError as exc:
                log.warning("worker %s: heartbeat failed: %s", self.name, exc)

    async def _beat(self) -> None:
        running = list(self._running.values())
        if not running:
            return
        until = self._clock.now() + self._settings.lease
        statuses = await self._platform.store.heartbeat(
            [r.task.id for r in running], owner=self.name, lease_until=until
        )
        held: list[Held] = []
        for attempt, status in zip(running, statuses, strict=True):
            if status is LeaseStatus.LOST:
                attempt.stop("lost")
                continue  # its slots run out with the lease it lost: never revive them
            if status is LeaseStatus.CANCEL_REQUESTED:
                attempt.stop("cancel")
            if attempt.slots:
                held.append(Held(attempt.task.id, attempt.slots))
        await self._gate.extend(held, until)
        if self._platform.transport.capabilities.lease_extension:
            await _keep_alive(running)

    async def _drain(self) -> None:
        deadline = self._clock.now() + self._settings.drain_timeout
        while self._running and (left := deadline - self._clock.now()) > 0:
            self._slot_freed.clear()
            await self._clock.wait(self._slot_freed, left)
        leftover = list(self._running.values())
        for running in leftover:
            running.stop("shutdown")
        await asyncio.gather(*(r.job for r in leftover if r.job), return_exceptions=True)
        await self._finisher.join()


def _time_out(running: _Running) -> None:
    running.stop("timeout")


def _cancel_requested() -> bool:
    """Whether this task was cancelled from outside: a handler that raises CancelledError
    itself leaves no cancel request, and that is its attempt's failure."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _seen(task: Task, outcome: Outcome) -> TaskRecord:
    """The record as the worker knows it after ``outcome``: this attempt's error only."""
    final = outcome.state in (State.SUCCEEDED, State.DEAD, State.CANCELLED)
    return TaskRecord(
        task=task.replace(run_at=outcome.run_at) if outcome.run_at is not None else task,
        state=outcome.state,
        updated_at=outcome.at,
        result=outcome.result,
        errors=(outcome.error,) if outcome.error else (),
        finished_at=outcome.at if final else None,
    )


async def _keep_alive(running: list[_Running]) -> None:
    by_consumer: dict[Consumer, list[Delivery]] = defaultdict(list)
    for attempt in running:
        by_consumer[attempt.consumer].append(attempt.delivery)
    for consumer, deliveries in by_consumer.items():
        await consumer.keep_alive(deliveries)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _close(consumers: list[Consumer]) -> None:
    for consumer in consumers:
        try:
            await consumer.close()
        except AtpError as exc:
            log.warning("closing a consumer failed: %s", exc)


def _default_patterns(registry: HandlerRegistry, configured: Sequence[str]) -> list[str]:
    if tuple(configured) != (">",) or not len(registry):
        return list(configured)
    return registry.patterns()


def _plugin_interceptors(platform: Platform) -> list[Interceptor]:
    contributed = platform.plugins.hook.atp_interceptors(settings=platform.settings)
    return [interceptor for batch in contributed for interceptor in batch]
