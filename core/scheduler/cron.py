"""The cron ticker: the leader fires each due tick of each schedule, exactly once.

One task per tick: the task's idempotency key is ``cron:{name}:{tick_ms}``, so a leader
that dies between publishing and recording, or two leaders for a moment, publish the
same key and the store creates the task once. The record of what fired is a
compare-and-set carrying the leader's fence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from atp.core.cron.expression import CronExpression
from atp.core.cron.planner import Round, plan_round
from atp.core.cron.service import tick_key
from atp.core.errors import AtpError, InvalidInput
from atp.core.model import ACTIVE_STATES
from atp.core.plugins import HookEmitter
from atp.core.ports import Clock, ScheduleStore, TaskStore
from atp.core.scheduler.component import Component, Leadership
from atp.core.schedules import Advance, Overlap, Schedule
from atp.core.service import Published, PublishRequest, TaskService

__all__ = ["Cron"]

log = logging.getLogger("atp.scheduler.cron")

REFRESH = 1.0
"""Longest sleep between two looks at the schedules: how soon one added elsewhere is seen."""
RETRY = 0.25
"""Seconds before a tick that is still due after a round (it failed) is tried again."""
BATCH = 100
"""Schedules fired per round (at most ``MAX_CATCH_UP`` tasks each, one publish batch)."""
EXPRESSIONS_KEPT = 1024
"""Parsed expressions cached per leadership (parsing costs more than a whole round)."""
BROKEN_RETRY = 3600.0
"""Seconds before a schedule that cannot be read (bad stored expression) is tried again."""


@dataclass(frozen=True, slots=True)
class _Plan:
    schedule: Schedule
    round: Round
    ticks: list[float]
    """The ticks to fire: the round's, or none when the overlap policy skips them."""


class Cron(Component):
    """Sleeps until the earliest next tick (at most ``REFRESH``), then fires what is due.

    Per round: read the due schedules, plan each (lateness, misfire policy, overlap), publish
    every task in one ``TaskService.publish``, then record the new next ticks with one
    fenced ``advance_schedules``. A store that keeps no schedules is logged as an error
    when leadership begins and the component stays idle; ``atp cron``, the Client and
    declared schedules refuse such a store with a ConfigError.
    """

    name = "cron"

    def __init__(
        self,
        schedules: ScheduleStore | None,
        tasks: TaskService,
        store: TaskStore,
        clock: Clock,
        emit: HookEmitter,
        *,
        leader: Leadership,
    ) -> None:
        """``schedules`` None: the store keeps no schedules, and the component stays idle."""
        super().__init__(clock, REFRESH, leader)
        self._tasks = tasks
        self._store = store
        self._emit = emit
        self._expressions: dict[tuple[str, str], CronExpression] = {}
        self._schedules = schedules

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due ticks until ``stop`` is set, waking at each next tick."""
        if self._schedules is None:
            return
        while not stop.is_set():
            if await self._safe_tick():
                await asyncio.sleep(0)
                continue
            await self._clock.wait(stop, await self._pause())

    async def tick(self) -> bool:
        schedules = self._schedules
        if schedules is None:
            return False
        now = self._clock.now()
        due = await schedules.due_schedules(now=now, limit=BATCH)
        if not due:
            return False
        fence = self._fence()  # NotLeading before anything is published
        plans = await self._overlap([self._plan(schedule, now) for schedule in due])
        plans, requests, published = await self._publish(plans)
        await self._announce(requests, published)  # created, so announced, whatever follows
        advances = _advances(plans, published)
        applied = await schedules.advance_schedules(advances, now=self._clock.now(), fence=fence)
        for advance, done in zip(advances, applied, strict=True):
            if not done:
                log.info("schedule %r changed while firing; it is read again", advance.name)
        return len(due) >= BATCH

    async def _publish(
        self, plans: list[_Plan]
    ) -> tuple[list[_Plan], list[PublishRequest], list[Published]]:
        """Publish every tick in one batch. If the batch is refused as invalid (a stored
        payload over today's limit), publish schedule by schedule, skipping the bad ones."""
        requests = [_request(p.schedule, tick) for p in plans for tick in p.ticks]
        if not requests:
            return plans, [], []
        try:
            return plans, requests, await self._tasks.publish(requests)
        except InvalidInput:
            pass
        kept, requests, published = [], [], []
        for plan in plans:
            own = [_request(plan.schedule, tick) for tick in plan.ticks]
            try:
                published += await self._tasks.publish(own) if own else []
                requests += own
            except InvalidInput as exc:
                name = plan.schedule.name
                log.error("schedule %r cannot fire, its ticks are skipped: %s", name, exc)
                plan = _Plan(plan.schedule, plan.round, [])
            kept.append(plan)
        return kept, requests, published

    async def _pause(self) -> float:
        """Seconds until the earliest next tick, at most REFRESH; RETRY if it is past."""
        if self._schedules is None:
            return REFRESH
        try:
            tick = await self._schedules.next_tick()
        except AtpError as exc:
            log.warning("cron: reading the next tick failed: %s", exc)
            return REFRESH
        if tick is None:
            return REFRESH
        wait = tick - self._clock.now()
        # Still due right after a round: it failed or lost a race; do not spin on it.
        return RETRY if wait <= 0 else min(wait, REFRESH)

    def _plan(self, schedule: Schedule, now: float) -> _Plan:
        try:
            expression = self._expression(schedule)
            planned = plan_round(schedule, expression, now)
        except AtpError as exc:
            log.error("schedule %r cannot be fired, retrying in an hour: %s", schedule.name, exc)
            planned = Round([], now + BROKEN_RETRY)
        if planned.missed:
            log.warning("schedule %r missed ticks (misfire=%s)", schedule.name, schedule.misfire)
        return _Plan(schedule, planned, planned.ticks)

    def _expression(self, schedule: Schedule) -> CronExpression:
        key = (schedule.expression, schedule.tz)
        expression = self._expressions.get(key)
        if expression is None:
            if len(self._expressions) >= EXPRESSIONS_KEPT:
                self._expressions.clear()
            expression = self._expressions[key] = CronExpression(*key)
        return expression

    async def _overlap(self, plans: list[_Plan]) -> list[_Plan]:
        """Drop the ticks of ``overlap=skip`` schedules whose last task is still active."""
        watched = [p.schedule.last_task for p in plans if _watched(p)]
        if not watched:
            return plans
        records = await self._store.get([task_id for task_id in watched if task_id])
        busy = {r.id for r in records if r is not None and r.state in ACTIVE_STATES}
        kept = []
        for plan in plans:
            if _watched(plan) and plan.schedule.last_task in busy:
                log.info(
                    "schedule %r: previous firing still runs, skipping %d ticks",
                    plan.schedule.name,
                    len(plan.ticks),
                )
                plan = _Plan(plan.schedule, plan.round, [])
            kept.append(plan)
        return kept

    async def _announce(self, requests: list[PublishRequest], published: list[Published]) -> None:
        """Fire ``atp_cron_fired`` for each task created (a duplicate tick is not announced)."""
        emit = self._emit
        created = [(r, p) for r, p in zip(requests, published, strict=True) if p.created]
        if not created or not emit.wants("atp_cron_fired"):
            return
        records = await self._store.get([p.id for _, p in created])
        for (request, _), record in zip(created, records, strict=True):
            if record is not None:
                emit(
                    "atp_cron_fired", schedule=request.schedule, tick=request.tick, task=record.task
                )


def _watched(plan: _Plan) -> bool:
    schedule = plan.schedule
    return schedule.overlap is Overlap.SKIP and schedule.last_task is not None and bool(plan.ticks)


def _request(schedule: Schedule, tick: float) -> PublishRequest:
    return PublishRequest(
        subject=schedule.subject,
        payload=schedule.payload,
        idempotency_key=tick_key(schedule.name, tick),
        schedule=schedule.name,
        tick=tick,
    )


def _advances(plans: Sequence[_Plan], published: Sequence[Published]) -> list[Advance]:
    advances = []
    results = iter(published)
    for plan in plans:
        last = None
        for _ in plan.ticks:
            last = next(results)
        schedule = plan.schedule
        advances.append(
            Advance(
                schedule.name,
                schedule.revision,
                plan.round.next_tick,
                last_tick=plan.ticks[-1] if plan.ticks else None,
                last_task=last.id if last is not None else None,
            )
        )
    return advances
