"""Test your handlers on an in-memory platform whose clock only your test moves.

``TestPlatform`` runs a real Worker and a real Scheduler over ``memory://`` backends on a
``ManualClock``: delays, retries with backoff, timeouts, leases, cron ticks, workflow
timers and leader elections all happen as in production, in as much clock time as they
need and almost no real time::

    import pytest

    @pytest.mark.asyncio  # or asyncio_mode = "auto" in the pytest configuration
    async def test_close_order():
        async with TestPlatform(app) as tp:
            published = await tp.client.publish("orders.close", {"order_id": 42}, delay="30m")
            await tp.run_until_idle()
            assert (await tp.get(published.id)).state is State.SUCCEEDED

Nothing sleeps: ``advance``, ``run_until_idle`` and ``wait`` walk the clock event to
event. While nothing runs, the clock jumps straight to the next deadline of anything (a
task's ``run_at`` or retry, a dead worker's lease, a workflow run's timeout or sleep, a
cron tick, the end of an open circuit breaker's time), landing once a second before it
so every scheduler loop looks as it would; the leader's lease is carried over the jump,
as its renewals would have kept it. While a handler runs, the clock goes from one wake-up
of the worker's or the handler's own to the next (the scheduler's looks are polls: they
would find nothing new). A walk costs a few
moves of the clock per event, whether the events are a second or a month apart: three
quiet days are two moves, three days of a 5-minute cron about 1,700, a handler hanging
until its 300 s timeout 300.

``run_until_idle()`` walks until nothing is pending: no task that is not final, no
workflow run waiting on a timer (a signal wait with a timeout included: its timeout
fires). Cron schedules alone never keep it busy; ticks on the way fire. ``max_time``
leaves work due later than that pending; ``max_events`` (default 10,000: moves of the
clock plus tasks created meanwhile) stops a handler that publishes new work each time it
runs. NotIdle names what is pending.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import logging
import math
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from atp.core.clock import POLLING, ManualClock
from atp.core.cron.service import ScheduleService
from atp.core.errors import AtpError
from atp.core.flow.breaker import BREAKER_PREFIX, Circuit
from atp.core.model import ACTIVE_STATES, FINAL_STATES, JSON, State, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.ports import BreakerLedger, FlowLedger, ScheduleStore, WorkflowStore
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.core.subjects import matches
from atp.core.worker.interceptors import CallNext, HandlerCall, Interceptor
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from atp.sdk.client import Client

__all__ = ["NotIdle", "TestPlatform", "TestScheduler", "TestWorker"]

log = logging.getLogger("atp.testing")

MEMORY = "memory://"
STOP_SPIN_LIMIT = 10_000
"""Turns of the event loop a crash waits for the handler calls to unwind."""
MAX_EVENTS = 10_000
"""Events ``run_until_idle`` and ``wait`` take at most, by default: moves of the clock
plus tasks created meanwhile (three days of a 5-minute cron take about 2,600)."""
LEAD_IN = 1.0
"""Seconds before a deadline the walk lands first: the scheduler's cron and workflow
loops look every second, so each wakes again by the deadline itself."""
STALL_LEASES = 3
"""Leader leases (``leader_ttl``) work may stay overdue before the walk gives up on it:
time enough for a standby scheduler to take over from a dead leader."""


class NotIdle(AssertionError):
    """A walk of the clock cannot end: work still running at ``max_time``, READY tasks no
    running worker consumes, work overdue that no scheduler handles, or ``max_events``
    spent (``wait`` raises TimeoutError at its ``max_time`` instead).

    ``active`` counts the tasks still pending, by (subject, state).
    """

    def __init__(self, message: str, active: dict[tuple[str, State], int]) -> None:
        super().__init__(message)
        self.active = active


class _CallTracker:
    """The outermost interceptor of a test worker: knows which handler calls are running."""

    def __init__(self) -> None:
        self.calls: set[asyncio.Task[object]] = set()

    async def execute(self, call: HandlerCall, call_next: CallNext) -> JSON:
        task = asyncio.current_task()
        assert task is not None
        self.calls.add(task)
        try:
            return await call_next(call)
        finally:
            self.calls.discard(task)


_RunLoop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""A ``run(stop)`` method: runs until the event is set."""


@dataclass(eq=False)
class _Runner:
    """A background task running a ``run(stop)`` loop, and how it may end."""

    name: str
    stop_event: asyncio.Event
    task: asyncio.Task[None]
    ended: bool = False

    def failure(self) -> BaseException | None:
        if self.ended or not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()


class _Background:
    """Something a TestPlatform runs in a background task: a worker or a scheduler."""

    def __init__(
        self, owner: TestPlatform, name: str, run: _RunLoop, *, polls: bool = False
    ) -> None:
        """``polls``: the loop only looks for work whose deadlines the walk reads in the
        store; its wake-ups (and its children's) are not events of their own."""
        self._owner = owner
        stop = asyncio.Event()
        context = contextvars.copy_context()
        context.run(POLLING.set, polls)
        task = asyncio.create_task(run(stop), name=f"atp-test-{name}", context=context)
        self._runner = _Runner(name, stop, task)

    @property
    def name(self) -> str:
        return self._runner.name

    @property
    def alive(self) -> bool:
        return not self._runner.task.done()


class TestWorker(_Background):
    """A Worker running in the background of a TestPlatform."""

    __test__ = False

    def __init__(self, owner: TestPlatform, worker: Worker, tracker: _CallTracker) -> None:
        self.worker = worker
        self._tracker = tracker
        super().__init__(owner, worker.name, worker.run)

    async def stop(self) -> None:
        """Stop as SIGTERM would: running handlers get up to ``drain_timeout`` of clock
        time (advanced here if they need it), the rest go back without counting."""
        await self._owner._finish(self._runner)

    async def crash(self) -> None:
        """Die abruptly: handler calls are cancelled and nothing more is recorded.

        The store keeps its tasks RUNNING under its lease, which no heartbeat renews any
        more: the scheduler's reaper recovers them once it expires.
        """
        runner = self._runner
        runner.ended = True
        runner.task.cancel()
        for _ in range(STOP_SPIN_LIMIT):
            for call in builtins.list(self._tracker.calls):
                call.cancel()
            if runner.task.done():
                break
            await asyncio.sleep(0)
        else:  # pragma: no cover - only a handler swallowing cancellation gets here
            raise RuntimeError(f"worker {self.name} would not die: a handler ignores cancel")
        await asyncio.gather(runner.task, return_exceptions=True)

    def __repr__(self) -> str:
        return f"TestWorker({self.name!r}, alive={self.alive})"


class TestScheduler(_Background):
    """A Scheduler replica running in the background of a TestPlatform."""

    __test__ = False

    def __init__(self, owner: TestPlatform, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        super().__init__(owner, scheduler.elector.owner, scheduler.run, polls=True)

    @property
    def is_leader(self) -> bool:
        return self.alive and self.scheduler.is_leader

    async def stop(self) -> None:
        """Stop leading and release the leader lease, so another replica takes over now."""
        await self._owner._finish(self._runner)

    async def crash(self) -> None:
        """Die abruptly: the lease is not released; another replica takes over once it
        expires (``leader_ttl``)."""
        self._runner.ended = True
        self._runner.task.cancel()
        await asyncio.gather(self._runner.task, return_exceptions=True)

    def __repr__(self) -> str:
        return f"TestScheduler({self.name!r}, leader={self.is_leader})"


class TestPlatform:
    """A whole atp deployment in memory, on a ManualClock, for tests.

    ``settings`` supply everything but the backends, which are always ``memory://``.
    ``plugins`` are registered on the platform's plugin manager (entry points are not
    loaded, so the tests see only what they ask for). ``seed`` makes retry jitter
    repeatable. Use it with ``async with``; it starts ``workers`` workers and, with
    ``scheduler``, one scheduler replica.
    """

    __test__ = False

    def __init__(
        self,
        app: App | None = None,
        settings: Settings | None = None,
        *,
        workers: int = 1,
        scheduler: bool = True,
        plugins: Iterable[object] = (),
        clock: ManualClock | None = None,
        seed: int | None = 0,
    ) -> None:
        self.app = app or App("test")
        settings = (settings or Settings()).replace(
            store=MEMORY, transport=MEMORY, coordinator=MEMORY
        )
        manager = make_plugin_manager(settings, entry_points=False)
        for index, plugin in enumerate(plugins, start=1):
            manager.register(plugin, _plugin_name(plugin, index))
        self.clock = clock or ManualClock()
        self.platform = Platform.build(settings, plugins=manager, clock=self.clock, local=True)
        self.client = Client(self.platform)
        self.workers: list[TestWorker] = []
        self.schedulers: list[TestScheduler] = []
        self._initial = (workers, scheduler)
        self._seed = seed
        self._started = False
        self._closed = False

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> TestPlatform:
        """Start the initial workers and scheduler; raise what any of them fails with."""
        if self._started:
            return self
        self._started = True
        if self.app.schedules:  # as `atp dev` does: the app's schedules are stored first
            await ScheduleService(self.platform).declare(builtins.list(self.app.schedules.values()))
        if self.app.workflows:  # and its workflows registered
            await self.client.register_workflow(*self.app.workflows.values())
        workers, scheduler = self._initial
        if scheduler:
            await self.start_scheduler()
        for _ in range(workers):
            await self.start_worker()
        return self

    async def start_worker(
        self,
        *,
        name: str | None = None,
        patterns: Sequence[str] | None = None,
        group: str | None = None,
        concurrency: int | None = None,
        interceptors: Sequence[Interceptor] = (),
    ) -> TestWorker:
        """Start one more worker running this platform's app; ``interceptors`` are
        chained inside the plugins' ones. Raises what the worker refuses at start-up."""
        index = len(self.workers)
        tracker = _CallTracker()
        contributed = self.platform.plugins.hook.atp_interceptors(settings=self.settings)
        chain: list[Interceptor] = [tracker, *(i for batch in contributed for i in batch)]
        worker = Worker(
            self.platform,
            self.app.registry,
            name=name or f"test-worker-{index + 1}",
            patterns=patterns,
            group=group,
            concurrency=concurrency,
            interceptors=[*chain, *interceptors],
            rng=None if self._seed is None else random.Random(self._seed + index),
        )
        handle = TestWorker(self, worker, tracker)
        self.workers.append(handle)
        await self.clock.settle()
        self._raise_failures()
        return handle

    async def start_scheduler(self, *, owner: str | None = None) -> TestScheduler:
        """Start one more scheduler replica; replicas compete for the leader lease."""
        owner = owner or f"test-scheduler-{len(self.schedulers) + 1}"
        handle = TestScheduler(self, Scheduler(self.platform, owner=owner))
        self.schedulers.append(handle)
        await self.clock.settle()
        self._raise_failures()
        return handle

    async def close(self) -> None:
        """Stop every worker (draining, on the clock) and scheduler, then the backends."""
        if self._closed:
            return
        self._closed = True
        runners = [h._runner for h in self._handles() if not h._runner.ended]
        try:
            await self._finish(*runners)
        finally:
            await self.client.close()
            await self.platform.close()

    async def __aenter__(self) -> TestPlatform:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- time ----------------------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, event to event, and stop exactly there.

        With nothing running the clock jumps straight to the next deadline on the way (a
        task's ``run_at``, a dead worker's lease, a workflow timer, a cron tick), so
        three quiet days cost nothing; while a handler runs it goes from one wake-up of
        a worker's to the next. Raises whatever a worker or scheduler crashed with.
        """
        target = self.clock.now() + _span("seconds", seconds)
        await self.clock.settle()
        while True:
            outlook = await self._look()
            if self.clock.now() >= target:
                return
            await self._step(outlook, target)

    async def run_until_idle(
        self, max_time: float | None = None, *, max_events: int = MAX_EVENTS
    ) -> None:
        """Walk the clock event to event until nothing is pending: no task is left that is
        not final, no workflow run waits on a timer. Cron schedules alone never keep it
        busy, but their ticks on the way fire. With ``max_time``, work due later than
        ``max_time`` seconds from now is left pending.

        Raises NotIdle, naming what is pending, for work still running at ``max_time``,
        READY tasks no running worker consumes, work due that no scheduler handles, and
        after ``max_events`` events, moves of the clock and tasks created meanwhile (a
        handler that publishes new work each time it runs is never idle).
        """
        limit = self._limit(max_time)
        budget = _Budget(_count("max_events", max_events))
        await self.clock.settle()
        while True:
            outlook = await self._look()
            if outlook.idle(limit):
                return
            self._check_served(outlook.active)
            self._check_stalled(outlook)
            if limit is not None and self.clock.now() >= limit:
                raise NotIdle(
                    f"not idle after {max_time:g}s of clock time: {outlook}", outlook.active
                )
            budget.spend(outlook)
            await self._step(outlook, limit)

    async def wait(
        self, task_id: str, max_time: float | None = None, *, max_events: int = MAX_EVENTS
    ) -> TaskRecord:
        """Walk the clock event to event until the task is final; return its record.

        Raises TimeoutError if it is not final after ``max_time`` seconds of clock time,
        NotIdle for work due that no scheduler handles or after ``max_events`` events.
        """
        limit = self._limit(max_time)
        budget = _Budget(_count("max_events", max_events))
        await self.clock.settle()
        while True:
            outlook = await self._look()
            record = await self.client.get(task_id)
            if record.state in FINAL_STATES:
                return record
            if limit is not None and self.clock.now() >= limit:
                raise TimeoutError(
                    f"task {task_id!r} is still {record.state} after {max_time:g}s of clock time"
                )
            self._check_stalled(outlook)
            budget.spend(outlook)
            await self._step(outlook, limit)

    def _limit(self, max_time: float | None) -> float | None:
        return None if max_time is None else self.clock.now() + _span("max_time", max_time)

    async def _step(self, outlook: _Outlook, limit: float | None) -> None:
        """Move the clock once, never past ``limit``. While something is overdue: to the
        next wake-up of any loop. While something runs: to the next deadline or wake-up
        of a worker's or handler's own (the scheduler's looks would find nothing new).
        Else to just before the next deadline (every loop looks once there, and wakes
        again by the deadline itself), then to the deadline."""
        now = self.clock.now()
        event = _earliest(outlook.due, outlook.tick)
        lead_in = max(LEAD_IN, self.settings.forward_interval, self.settings.reap_interval)
        if event is not None and event <= now:
            target = self.clock.next_deadline()
        elif outlook.busy:  # the scheduler's looks would find nothing: no event is due
            own = self.clock.next_deadline(polls=False)
            target = _earliest(self.clock.next_deadline() if own is None else own, event)
        elif event is not None and event - now > 2 * lead_in:  # not a hair's breadth away
            target = event - lead_in
        else:
            target = event
        target = _earliest(target, limit)
        if target is None:  # pragma: no cover - schedulers and workers always wait
            raise NotIdle(f"nothing on the clock can move this on: {outlook}", outlook.active)
        await self._carry_leases(target)
        await self.clock.jump(max(target - now, 0.0))
        self._raise_failures()

    async def _carry_leases(self, target: float) -> None:
        """Extend the leader's lease over a jump it would not outlast, as its renewals
        would have in real time, so a quiet stretch does not change the leader; the
        elector renews as usual when it wakes. A lease the coordinator no longer holds
        as the elector knows it is left alone."""
        coordinator, now = self.platform.coordinator, self.clock.now()
        for handle in self.schedulers:
            lease = handle.scheduler.elector.lease if handle.alive else None
            if lease is None or lease.expires_at > target:
                continue
            try:
                if await coordinator.holder(lease.name) == lease:
                    await coordinator.renew(lease, lease.expires_at + target - 2 * now)
            except AtpError as exc:  # it lapses: the scheduler takes it again on waking
                log.warning("could not carry %s's lease over a jump: %s", handle.name, exc)

    # -- looking -------------------------------------------------------------------------

    async def get(self, task_id: str) -> TaskRecord:
        """Return the task's record; NotFound for an unknown id."""
        return await self.client.get(task_id)

    async def tasks(
        self, *, subject: str | None = None, states: Iterable[State | str] | None = None
    ) -> list[TaskRecord]:
        """Return every task (matching ``subject`` and ``states``), newest first."""
        found: list[TaskRecord] = []
        cursor: str | None = None
        while True:
            page = await self.client.list(subject=subject, states=states, cursor=cursor, limit=1000)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def dead_letters(self, subject: str | None = None) -> list[TaskRecord]:
        """Return every DEAD task, newest first."""
        return await self.tasks(subject=subject, states=[State.DEAD])

    def __repr__(self) -> str:
        return f"TestPlatform(now={self.clock.now()!r}, workers={len(self.workers)})"

    # -- internals -----------------------------------------------------------------------

    async def _finish(self, *runners: _Runner) -> None:
        """Stop ``runners`` gracefully, advancing the clock while a drain needs it."""
        for runner in runners:
            runner.ended = True
            runner.stop_event.set()
        pending = [runner.task for runner in runners]
        settings = self.settings
        deadline = self.clock.now() + settings.drain_timeout + settings.heartbeat
        step = min(settings.forward_interval, settings.heartbeat)
        await self.clock.settle()
        while not all(task.done() for task in pending) and self.clock.now() < deadline:
            await self.clock.advance(step)
        for task in pending:
            task.cancel()
        results = await asyncio.gather(*pending, return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise errors[0]

    def _check_served(self, active: dict[tuple[str, State], int]) -> None:
        """Fail at once for READY tasks that no running worker consumes: they would wait
        for ever, and walking the clock on would only hide why."""
        unserved = sorted(
            subject
            for subject, state in active
            if state is State.READY and not self._served(subject)
        )
        if unserved:
            patterns = [p for h in self.workers if h.alive for p in h.worker.patterns]
            raise NotIdle(
                f"tasks are READY on {', '.join(map(repr, unserved))}, which no running "
                f"worker consumes (workers consume {patterns or 'nothing'})",
                active,
            )

    def _handles(self) -> list[_Background]:
        return [*self.workers, *self.schedulers]

    def _raise_failures(self) -> None:
        for handle in self._handles():
            error = handle._runner.failure()
            if error is not None:
                handle._runner.ended = True
                raise RuntimeError(f"{handle._runner.name} stopped with an error") from error

    def _check_stalled(self, outlook: _Outlook) -> None:
        """Fail for work long overdue: walking on would only hide that nothing handles it."""
        if outlook.stalled is None:
            return
        late = self.clock.now() - outlook.stalled
        raise NotIdle(
            f"work due {late:g}s ago is still not handled ({outlook}): is a scheduler "
            f"running and leading? (schedulers: {self.schedulers or 'none'})",
            outlook.active,
        )

    async def _look(self) -> _Outlook:
        """What is pending and when each pending thing is due next; the event loop has
        settled (the walk's first look settles, every jump settles after moving)."""
        self._raise_failures()
        now = self.clock.now()
        counts = await self.client.counts()
        active = {key: n for key, n in counts.items() if key[1] in ACTIVE_STATES}
        busy_workers = sum(not handle.worker.idle for handle in self.workers if handle.alive)
        busy = busy_workers > 0
        if busy and not active:
            active[("(worker)", State.RUNNING)] = busy_workers
        timer = await self._workflow_timer()
        deadlines = [] if timer is None else [timer]
        probe = await self._breaker_timer() if active else None
        deadlines += [] if probe is None else [probe]
        if active:
            states = sorted({state for _, state in active})
            for record in await self.tasks(states=states):
                moving, at = self._deadline(record, now)
                busy = busy or moving
                deadlines += [] if at is None else [at]
        stale = now - STALL_LEASES * self.settings.leader_ttl
        tick = await self._cron_tick()
        return _Outlook(
            active=active,
            busy=busy,
            due=min((at for at in deadlines if at >= stale), default=None),
            stalled=min((at for at in deadlines if at < stale), default=None),
            tick=None if tick is None or tick < stale else tick,
            timer=timer,
            tasks=sum(counts.values()),
        )

    def _deadline(self, record: TaskRecord, now: float) -> tuple[bool, float | None]:
        """Whether ``record`` may move any moment (a worker runs it, or takes it as soon as
        the loop turns), and when it moves on by itself."""
        task = record.task
        if record.state is State.SCHEDULED or task.run_at > now:
            return False, task.run_at  # the forwarder's (a READY one was taken ahead)
        if record.state is State.READY:
            served = self._served(task.subject)
            return served, None if served else record.lease_until
        owner = record.lease_owner
        if owner in {handle.name for handle in self.workers if handle.alive}:
            return True, None  # its heartbeats keep the lease
        dead = owner is None or owner in {handle.name for handle in self.workers}
        # A worker of someone else's may still beat: it runs, and its lease may run out.
        return not dead, record.lease_until

    def _served(self, subject: str) -> bool:
        return any(matches(p, subject) for h in self.workers if h.alive for p in h.worker.patterns)

    async def _workflow_timer(self) -> float | None:
        """The earliest ``wake_at`` of the active workflow runs: a timeout, a sleep, a check."""
        store = self.platform.store
        if not isinstance(store, WorkflowStore):
            return None
        runs = await store.due_runs(now=math.inf, limit=1)
        return runs[0].wake_at if runs else None

    async def _breaker_timer(self) -> float | None:
        """The earliest time a circuit breaker holding tasks back lets a probe run: its
        open time's end, or its probe's claim running out."""
        store = self.platform.store
        if not (isinstance(store, BreakerLedger) and isinstance(store, FlowLedger)):
            return None
        waiting = await store.waiters()
        held = {name[len(BREAKER_PREFIX) :] for name in waiting if name.startswith(BREAKER_PREFIX)}
        if not held:
            return None
        times = [
            state.open_until if state.circuit is Circuit.OPEN else state.probe_until
            for state in await store.breakers()
            if state.key in held and state.circuit is not Circuit.CLOSED
        ]
        return min(times, default=None)

    async def _cron_tick(self) -> float | None:
        store = self.platform.store
        return await store.next_tick() if isinstance(store, ScheduleStore) else None


@dataclass(frozen=True, slots=True)
class _Outlook:
    """What is left to happen, as the walk sees it between two moves of the clock."""

    active: dict[tuple[str, State], int]
    """Tasks not final, by (subject, state); a busy worker alone is ("(worker)", RUNNING)."""
    busy: bool
    """Something may move at any moment (a handler runs): walk wake-up by wake-up."""
    due: float | None
    """The earliest deadline of pending work: a run_at, a dead worker's lease, a timer."""
    stalled: float | None
    """The earliest deadline left unhandled for ``STALL_LEASES`` leader leases."""
    tick: float | None
    """The earliest cron tick: walked through, never waited for."""
    timer: float | None
    """The earliest workflow run's ``wake_at``."""
    tasks: int
    """Tasks in the store, in any state."""

    def idle(self, limit: float | None) -> bool:
        """Nothing may move any moment, and nothing pending is due by ``limit`` (or ever)."""
        if self.busy or self.stalled is not None:
            return False
        return self.due is None or (limit is not None and self.due > limit)

    def __str__(self) -> str:
        parts = [
            f"{n} {state} on {subject!r}" for (subject, state), n in sorted(self.active.items())
        ]
        if self.timer is not None:
            parts.append(f"a workflow run waiting until {self.timer:.3f}")
        return ", ".join(parts) + (
            " (a READY task that never runs has no worker consuming its subject; a RUNNING"
            " one has a handler that never returns)"
        )


def _plugin_name(plugin: object, index: int) -> str:
    """A module keeps its name; an object is named by its class, as logs then show it."""
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) else f"{type(plugin).__qualname__}#{index}"


def _earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)


def _span(name: str, seconds: float) -> float:
    if not seconds >= 0:  # also refuses NaN
        raise ValueError(f"{name} must be a number of seconds >= 0, got {seconds!r}")
    return seconds


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


@dataclass
class _Budget:
    """The events one walk may take: moves of the clock, and tasks created meanwhile."""

    limit: int
    moves: int = 0
    tasks_at_start: int | None = None

    def spend(self, outlook: _Outlook) -> None:
        """Count one more move; NotIdle once the budget is spent."""
        if self.tasks_at_start is None:
            self.tasks_at_start = outlook.tasks
        created = max(outlook.tasks - self.tasks_at_start, 0)  # the pruner may delete some
        if self.moves + created >= self.limit:
            raise NotIdle(
                f"still not idle after {self.limit} events ({self.moves} moves of the clock, "
                f"{created} tasks created meanwhile): {outlook}. A handler that publishes new "
                "work each time it runs is never idle; pass a larger max_events= for a "
                "longer walk",
                outlook.active,
            )
        self.moves += 1
