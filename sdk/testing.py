"""Test your handlers on an in-memory platform whose clock only your test moves.

``TestPlatform`` runs a real Worker and a real Scheduler over ``memory://`` backends on a
``ManualClock``: delays, retries with backoff, timeouts, leases and leader elections all
happen as in production, in as much clock time as they need and almost no real time::

    async def test_close_order():
        async with TestPlatform(app) as tp:
            published = await tp.client.publish("orders.close", {"order_id": 42}, delay="30s")
            await tp.run_until_idle()
            record = await tp.get(published.id)
            assert record.state is State.SUCCEEDED

Nothing sleeps: ``advance`` and ``run_until_idle`` move the clock, and every loop whose
deadline passes runs in between, in deadline order. The real time this takes grows with
how often the loops wake, mostly the forwarder's ``forward_interval`` (0.05 s): a
30-minute delay runs in about 6 s, or 0.5 s with ``Settings(forward_interval=1)``.
"""

from __future__ import annotations

import asyncio
import builtins
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from atp.core.clock import ManualClock
from atp.core.cron.service import ScheduleService
from atp.core.model import FINAL_STATES, JSON, State, TaskRecord
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.core.subjects import matches
from atp.core.worker.interceptors import CallNext, HandlerCall, Interceptor
from atp.core.worker.runtime import Worker
from atp.sdk.app import App
from atp.sdk.client import Client

__all__ = ["NotIdle", "TestPlatform", "TestScheduler", "TestWorker"]

MEMORY = "memory://"
STOP_SPIN_LIMIT = 10_000
"""Turns of the event loop a crash waits for the handler calls to unwind."""


class NotIdle(AssertionError):
    """``run_until_idle`` ran out of clock time with work still pending.

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

    def __init__(self, owner: TestPlatform, name: str, run: _RunLoop) -> None:
        self._owner = owner
        stop = asyncio.Event()
        task = asyncio.create_task(run(stop), name=f"atp-test-{name}")
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
        super().__init__(owner, scheduler.elector.owner, scheduler.run)

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
        """Move the clock ``seconds`` forward; every loop due on the way runs in order.

        Raises whatever a worker or scheduler crashed with meanwhile.
        """
        await self.clock.advance(seconds)
        self._raise_failures()

    async def run_until_idle(self, max_time: float = 600.0) -> None:
        """Advance the clock until no task is READY or RUNNING and none is due to run
        within ``max_time`` seconds from now; delayed tasks and retries due in that
        window run on the way. Raises NotIdle if work is still pending at the end.
        """
        deadline = self.clock.now() + max_time
        step = self.settings.forward_interval
        while True:
            await self.clock.settle()
            self._raise_failures()
            active, next_due = await self._activity()
            now = self.clock.now()
            if not active and (next_due is None or next_due > deadline):
                return
            self._check_served(active)
            if now >= deadline:
                raise NotIdle(_describe_pending(active, max_time), active)
            if active or next_due is None:
                await self.clock.advance(min(now + step, deadline) - now)
            else:
                await self._skip_to(min(max(next_due, now + step), deadline))

    async def wait(self, task_id: str, max_time: float = 600.0) -> TaskRecord:
        """Advance the clock until the task is final and return its record.

        Raises TimeoutError if it is not final after ``max_time`` seconds of clock time.
        """
        deadline = self.clock.now() + max_time
        step = self.settings.forward_interval
        while True:
            await self.clock.settle()
            self._raise_failures()
            record = await self.client.get(task_id)
            now = self.clock.now()
            if record.state in FINAL_STATES:
                return record
            if now >= deadline:
                raise TimeoutError(
                    f"task {task_id!r} is still {record.state} after {max_time:g}s of clock time"
                )
            if record.state is State.SCHEDULED and record.task.run_at > now + step:
                await self._skip_to(min(record.task.run_at, deadline))
            else:
                await self.clock.advance(min(now + step, deadline) - now)

    async def _skip_to(self, target: float) -> None:
        """Reach ``target`` quickly while nothing is READY or RUNNING: jump the quiet
        stretch in one step, then advance the last moments normally so the forwarder
        ticks as usual around the due time. A jump longer than the leader lease lets it
        lapse; the scheduler then takes it again, as after a long pause."""
        quiet_until = target - 2 * self.settings.forward_interval
        if quiet_until > self.clock.now():
            await self.clock.jump(quiet_until - self.clock.now())
            self._raise_failures()
        if target > self.clock.now():
            await self.clock.advance(target - self.clock.now())

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
        for ever, and walking the clock to ``max_time`` would only hide why."""
        patterns = [p for h in self.workers if h.alive for p in h.worker.patterns]
        unserved = sorted(
            subject
            for subject, state in active
            if state is State.READY and not any(matches(p, subject) for p in patterns)
        )
        if unserved:
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

    async def _activity(self) -> tuple[dict[tuple[str, State], int], float | None]:
        """The READY and RUNNING counts, and when the next SCHEDULED task is due."""
        counts = await self.client.counts()
        active = {k: n for k, n in counts.items() if k[1] in (State.READY, State.RUNNING)}
        busy_workers = sum(not handle.worker.idle for handle in self.workers if handle.alive)
        if busy_workers and not active:
            active[("(worker)", State.RUNNING)] = busy_workers
        if not any(state is State.SCHEDULED for _, state in counts):
            return active, None
        scheduled = await self.tasks(states=[State.SCHEDULED])
        return active, min((r.task.run_at for r in scheduled), default=None)


def _plugin_name(plugin: object, index: int) -> str:
    """A module keeps its name; an object is named by its class, as logs then show it."""
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) else f"{type(plugin).__qualname__}#{index}"


def _describe_pending(active: dict[tuple[str, State], int], max_time: float) -> str:
    if not active:
        return f"tasks are still due within {max_time:g}s of clock time"
    parts = ", ".join(
        f"{n} {state} on {subject!r}" for (subject, state), n in sorted(active.items())
    )
    return (
        f"not idle after {max_time:g}s of clock time: {parts} (a READY task that never runs "
        "has no worker consuming its subject; a RUNNING one has a handler that never returns)"
    )
