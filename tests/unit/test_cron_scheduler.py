"""The cron component on the ManualClock: on-time firing, misfire and overlap policies,
failover, two leaders at once, the hook, and the Client's schedule operations."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from atp.core.clock import ManualClock
from atp.core.context import current_task
from atp.core.cron.expression import CronExpression
from atp.core.cron.planner import GRACE, MAX_CATCH_UP
from atp.core.cron.service import tick_key
from atp.core.errors import (
    AlreadyExists,
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    NotFound,
)
from atp.core.model import State, Task, TaskRecord
from atp.core.plugins import hookimpl
from atp.core.ports import Created, Lease, TaskQuery
from atp.core.scheduler.component import Leadership
from atp.core.scheduler.components import cron
from atp.core.schedules import Schedule
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.plugins.memory import MemoryStore
from atp.sdk import App
from atp.sdk.testing import TestPlatform

HOUR_ALIGNED = 1_800_000_000.0  # a whole hour (and minute) in UTC
SHANGHAI = "Asia/Shanghai"


class Fired:
    """Records atp_cron_fired."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, Task]] = []

    @hookimpl
    def atp_cron_fired(self, schedule: str, tick: float, task: Task) -> None:
        self.calls.append((schedule, tick, task))


async def fired(tp: TestPlatform, name: str) -> list[TaskRecord]:
    """Every task the schedule ``name`` fired, oldest tick first."""
    page = await tp.platform.store.query(TaskQuery(limit=10_000))
    return sorted((r for r in page.items if r.task.schedule == name), key=lambda r: r.task.tick)


def counting_app() -> tuple[App, list[float]]:
    app = App()
    ticks: list[float] = []

    @app.task("cron.*")
    async def job(n: int = 0) -> None:
        tick = current_task().tick
        assert tick is not None
        ticks.append(tick)

    return app, ticks


async def test_every_tick_fires_once_at_its_time_and_runs():
    app, ran = counting_app()
    hook = Fired()
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(app, clock=clock, plugins=[hook]) as tp:
        await tp.client.add_schedule("beat", "*/10 * * * * *", "cron.beat", {"n": 1})
        await tp.advance(60)
        await tp.run_until_idle(max_time=1)
        records = await fired(tp, "beat")
    ticks = [HOUR_ALIGNED + 10 * i for i in range(1, 7)]
    assert [r.task.tick for r in records] == ticks
    assert [r.task.created_at for r in records] == ticks  # enqueued at the tick itself
    assert all(r.state is State.SUCCEEDED and r.task.payload == {"n": 1} for r in records)
    assert [r.task.idempotency_key for r in records] == [tick_key("beat", t) for t in ticks]
    assert sorted(ran) == ticks
    assert [(name, tick) for name, tick, _ in hook.calls] == [("beat", t) for t in ticks]
    assert [task.id for _, _, task in hook.calls] == [r.id for r in records]


async def test_the_schedule_records_its_last_firing_and_next_tick():
    async with TestPlatform(clock=ManualClock(start=HOUR_ALIGNED)) as tp:
        await tp.client.add_schedule("beat", "*/10 * * * * *", "cron.beat")
        await tp.advance(25)
        schedule = await tp.client.get_schedule("beat")
        records = await fired(tp, "beat")
    assert schedule.last_tick == HOUR_ALIGNED + 20
    assert schedule.last_task == records[-1].id
    assert schedule.last_fired_at == HOUR_ALIGNED + 20
    assert schedule.next_tick == HOUR_ALIGNED + 30


async def down_for(misfire: str, expression: str, downtime: float) -> list[float]:
    """Add a schedule, let no scheduler run for ``downtime``, then start one."""
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(clock=clock, scheduler=False, workers=0) as tp:
        await tp.client.add_schedule("job", expression, "cron.job", misfire=misfire)
        await clock.jump(downtime)
        await tp.start_scheduler()
        await tp.advance(0.01)
        return [r.task.tick for r in await fired(tp, "job")]


@pytest.mark.parametrize(
    ("misfire", "expected"),
    [("skip", []), ("once", [10]), ("all", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])],
)
async def test_misfire_policy_after_downtime(misfire, expected):
    ticks = await down_for(misfire, "0 * * * *", 10.5 * 3600)
    assert ticks == [HOUR_ALIGNED + 3600 * h for h in expected]


async def test_fire_all_is_bounded_to_the_latest_ticks():
    ticks = await down_for("all", "* * * * *", 5 * 3600 + 30)
    now = HOUR_ALIGNED + 5 * 3600 + 30
    assert len(ticks) == MAX_CATCH_UP
    assert ticks == [now - 30 - 60 * i for i in reversed(range(MAX_CATCH_UP))]


@pytest.mark.parametrize("misfire", ["skip", "once", "all"])
async def test_ticks_late_by_less_than_the_grace_fire_whatever_the_policy(misfire):
    ticks = await down_for(misfire, "*/10 * * * * *", GRACE - 5)
    assert ticks == [HOUR_ALIGNED + 10 * i for i in range(1, 6)]


async def test_the_next_tick_after_a_misfire_is_in_the_future():
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(clock=clock, scheduler=False, workers=0) as tp:
        await tp.client.add_schedule("job", "0 * * * *", "cron.job", misfire="skip")
        await clock.jump(10.5 * 3600)
        await tp.start_scheduler()
        await tp.advance(0.01)
        schedule = await tp.client.get_schedule("job")
    assert schedule.next_tick == HOUR_ALIGNED + 11 * 3600


def blocking_app() -> tuple[App, asyncio.Event]:
    app = App()
    release = asyncio.Event()

    @app.task("cron.slow")
    async def slow() -> None:
        await release.wait()

    return app, release


@pytest.mark.parametrize(("overlap", "expected"), [("skip", [10, 40]), ("allow", [10, 20, 30, 40])])
async def test_overlap_policy_while_the_previous_firing_runs(overlap, expected):
    app, release = blocking_app()
    settings = Settings(concurrency=8)
    async with TestPlatform(app, settings, clock=ManualClock(start=HOUR_ALIGNED)) as tp:
        await tp.client.add_schedule("slow", "*/10 * * * * *", "cron.slow", overlap=overlap)
        await tp.advance(35)
        release.set()
        await tp.advance(10)
        ticks = [r.task.tick for r in await fired(tp, "slow")]
    assert ticks == [HOUR_ALIGNED + t for t in expected]


async def test_a_failover_fires_every_tick_once():
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(clock=clock, workers=0) as tp:
        await tp.client.add_schedule("beat", "* * * * * *", "cron.beat")
        second = await tp.start_scheduler()
        await tp.advance(5)
        first = tp.schedulers[0]
        assert first.is_leader
        await first.crash()
        await tp.advance(tp.settings.leader_ttl + 10)
        assert second.is_leader
        ticks = [r.task.tick for r in await fired(tp, "beat")]
    end = HOUR_ALIGNED + 15 + tp.settings.leader_ttl
    assert ticks == [HOUR_ALIGNED + i for i in range(1, int(end - HOUR_ALIGNED) + 1)]


async def test_a_dead_leaders_firings_and_a_stale_leader_still_make_one_task_per_tick():
    hook = Fired()
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(clock=clock, scheduler=False, workers=0, plugins=[hook]) as tp:
        await tp.client.add_schedule("beat", "* * * * * *", "cron.beat")
        await clock.jump(3)
        # A leader published ticks 1 to 3 and died before recording them.
        requests = [
            PublishRequest(
                "cron.beat", idempotency_key=tick_key("beat", t), schedule="beat", tick=t
            )
            for t in (HOUR_ALIGNED + 1, HOUR_ALIGNED + 2, HOUR_ALIGNED + 3)
        ]
        await TaskService(tp.platform).publish(requests)
        fenced: list[str] = []
        old = Lease("scheduler", "a", 1, clock.now() + 60)
        new = Lease("scheduler", "b", 2, clock.now() + 60)
        stale = cron(tp.platform, Leadership(lambda: old.fence, lambda: fenced.append("old")))
        leader = cron(tp.platform, Leadership(lambda: new.fence, lambda: fenced.append("new")))
        await leader._safe_tick()  # fires 1 to 3 again: the keys match, nothing is created
        await clock.jump(1)
        await stale._safe_tick()  # publishes tick 4, then its record is fenced out
        await leader._safe_tick()  # fires tick 4 again: the key matches
        records = await fired(tp, "beat")
        schedule = await tp.client.get_schedule("beat")
    assert [r.task.tick for r in records] == [HOUR_ALIGNED + i for i in (1, 2, 3, 4)]
    assert schedule.next_tick == HOUR_ALIGNED + 5
    assert fenced == ["old"]
    assert [tick for _, tick, _ in hook.calls] == [HOUR_ALIGNED + 4]  # created once, by the stale


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now():
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(clock=clock, workers=0) as tp:
        await tp.client.add_schedule("beat", "*/10 * * * * *", "cron.beat")
        await tp.advance(15)
        paused = await tp.client.pause_schedule("beat")
        await tp.advance(60)
        resumed = await tp.client.resume_schedule("beat")
        await tp.advance(10)
        ticks = [r.task.tick for r in await fired(tp, "beat")]
    assert paused.paused
    assert not resumed.paused
    assert resumed.next_tick == HOUR_ALIGNED + 80
    assert ticks == [HOUR_ALIGNED + 10, HOUR_ALIGNED + 80]


async def test_trigger_publishes_now_and_remove_stops_firing():
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(clock=clock, workers=0) as tp:
        await tp.client.add_schedule(
            "daily", "0 2 * * *", "cron.daily", {"k": 1}, tz="Asia/Shanghai"
        )
        published = await tp.client.trigger_schedule("daily")
        record = await tp.client.get(published.id)
        await tp.client.remove_schedule("daily")
        assert await tp.client.list_schedules() == []
        with pytest.raises(NotFound, match="daily"):
            await tp.client.remove_schedule("daily")
    assert record.task.schedule == "daily"
    assert record.task.tick == HOUR_ALIGNED
    assert record.task.payload == {"k": 1}


async def test_bad_input_and_duplicate_names_change_nothing():
    async with TestPlatform(workers=0) as tp:
        first = await tp.client.add_schedule("job", "0 * * * *", "cron.job")
        with pytest.raises(AlreadyExists, match="'job' exists already"):
            await tp.client.add_schedule("job", "*/5 * * * *", "cron.other")
        bad = [
            ({"expression": "61 * * * *"}, "bad cron expression"),
            ({"expression": "* * *"}, "3 fields"),
            ({"tz": "Mars/Olympus"}, "unknown time zone"),
            ({"name": "no spaces"}, "schedule name"),
            ({"subject": "bad..subject"}, "subject"),
            ({"misfire": "twice"}, "misfire must be one of"),
            ({"overlap": "queue"}, "overlap must be one of"),
        ]
        for change, message in bad:
            args = {"name": "new", "expression": "* * * * *", "subject": "cron.new", **change}
            with pytest.raises(InvalidInput, match=message):
                await tp.client.add_schedule(**args)
        with pytest.raises(NotFound):
            await tp.client.pause_schedule("missing")
        assert await tp.client.list_schedules() == [first]


async def test_an_apps_declared_schedules_are_stored_and_updated_keeping_the_pause():
    app = App()

    @app.cron("0 2 * * *", subject="reports.daily", tz="Asia/Shanghai", payload={"v": 1})
    async def report() -> None: ...

    with pytest.raises(AlreadyExists):
        app.cron("0 3 * * *", subject="reports.daily")
    with pytest.raises(InvalidInput):
        app.cron("0 3 * *", subject="reports.other")
    assert app.registry.resolve("reports.daily") is not None
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(app, clock=clock, workers=0) as tp:
        stored = await tp.client.get_schedule("reports.daily")
        await tp.client.pause_schedule("reports.daily")
    assert (stored.expression, stored.tz) == ("0 2 * * *", "Asia/Shanghai")
    assert stored.next_tick == CronExpression("0 2 * * *", SHANGHAI).next_after(HOUR_ALIGNED)

    again = App()
    again.cron("30 2 * * *", subject="reports.daily", tz="Asia/Shanghai", payload={"v": 2})(report)
    tp2 = TestPlatform(again, clock=clock, workers=0)
    tp2.platform.store = tp.platform.store  # the same durable store, a new deployment
    async with tp2:
        updated = await tp2.client.get_schedule("reports.daily")
    assert updated.paused
    assert (updated.expression, updated.payload) == ("30 2 * * *", {"v": 2})
    assert updated.next_tick == CronExpression("30 2 * * *", "Asia/Shanghai").next_after(
        HOUR_ALIGNED
    )


class FlakyStore(MemoryStore):
    """A memory store whose first ``failures`` creates fail as an unreachable server's would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.creates = 0

    async def create(self, tasks: Sequence[Task], **options: Any) -> list[Created]:
        self.creates += 1
        if self.failures:
            self.failures -= 1
            raise BackendUnavailable("store unreachable")
        return await super().create(tasks, **options)


async def test_a_failed_round_is_retried_after_a_pause_and_loses_no_tick():
    clock = ManualClock(start=HOUR_ALIGNED)
    tp = TestPlatform(clock=clock, workers=0)
    store = tp.platform.store = FlakyStore(failures=3)
    async with tp:
        await tp.client.add_schedule("beat", "* * * * * *", "cron.beat")
        await tp.advance(5)
        ticks = [r.task.tick for r in await fired(tp, "beat")]
    assert ticks == [HOUR_ALIGNED + i for i in range(1, 6)]
    assert store.creates == 3 + 5  # three failures 0.25 s apart, then one create per second


class NoSchedules(MemoryStore):
    """A TaskStore that does not keep schedules (a member set to None fails the Protocol)."""

    put_schedules = None  # type: ignore[assignment]


async def test_a_store_without_schedules_is_refused_clearly(caplog):
    tp = TestPlatform(workers=0)
    tp.platform.store = NoSchedules()
    async with tp:
        with pytest.raises(ConfigError, match="does not keep cron schedules"):
            await tp.client.add_schedule("beat", "* * * * * *", "cron.beat")
        with pytest.raises(ConfigError, match="does not implement ScheduleStore"):
            await tp.client.list_schedules()
        await tp.advance(1)
        assert tp.schedulers[0].is_leader  # delayed tasks are still forwarded
    assert "cron schedules are not fired" in caplog.text


async def test_a_schedule_that_cannot_be_published_is_skipped_and_the_others_fire():
    clock = ManualClock(start=HOUR_ALIGNED)
    async with TestPlatform(None, Settings(max_payload=100), clock=clock, workers=0) as tp:
        await tp.client.add_schedule("good", "* * * * * *", "cron.good")
        # Stored by an atp whose payload limit was larger than this one's.
        big = Schedule("big", "* * * * * *", "cron.big", "x" * 200, next_tick=HOUR_ALIGNED + 1)
        await tp.platform.store.put_schedules([big], now=HOUR_ALIGNED)
        await tp.advance(3)
        good = [r.task.tick for r in await fired(tp, "good")]
        skipped = await tp.client.get_schedule("big")
    assert good == [HOUR_ALIGNED + i for i in (1, 2, 3)]
    assert await fired(tp, "big") == []
    assert skipped.next_tick == HOUR_ALIGNED + 4
