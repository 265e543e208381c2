"""The ScheduleStore conformance suite: every guarantee of ``atp.core.ports.ScheduleStore``.

Subclass it under a ``Test`` name and provide a ``store`` fixture, as for
``TaskStoreConformance``::

    class TestMySchedules(ScheduleStoreConformance):
        @pytest.fixture
        async def store(self, clock):
            store = make_my_store(clock)   # a fresh, EMPTY store
            yield store
            await store.close()

The store must be empty at the start of each test (listing, due and next-tick reads see
every schedule). Time: every method takes its times as arguments, so the suite never
waits; its times are offsets from ``clock.now()``.
"""

from __future__ import annotations

from typing import Any

import pytest

from atp.core.errors import AlreadyExists, FencedOut, InvalidInput, StateConflict
from atp.core.ports import Clock, Fence, ScheduleStore, TaskStore
from atp.core.schedules import Advance, Misfire, Overlap, Schedule
from atp.sdk.conformance._support import PAYLOADS, PortSuite, missing_fixture, payload_id, unique

__all__ = ["ScheduleStoreConformance"]


def make_schedule(name: str, now: float, **fields: Any) -> Schedule:
    """A schedule not stored yet (revision 0), next due an hour after ``now``."""
    fields.setdefault("next_tick", now + 3600.0)
    fields.setdefault("expression", "0 * * * *")
    fields.setdefault("subject", f"{name}.run")
    return Schedule(name=name, **fields)


def full_schedule(name: str, now: float) -> Schedule:
    """A schedule with every field set to a value other than its default."""
    return make_schedule(
        name,
        now,
        expression="0 30 2 * * 1-5",
        payload={"text": "héllo ✓", "n": [1, 2.5, None, {"x": True}]},
        tz="Europe/Berlin",
        misfire=Misfire.ALL,
        overlap=Overlap.SKIP,
        paused=True,
        next_tick=now + 7200.5,
        last_tick=now - 3600.0,
        last_task="0190abcdef",
        last_fired_at=now - 3599.25,
    )


async def stored_schedule(store: ScheduleStore, name: str) -> Schedule:
    """The stored schedule ``name``, which must exist."""
    (schedule,) = await store.get_schedules([name])
    assert schedule is not None, f"schedule {name!r} is not stored"
    return schedule


class ScheduleStoreConformance(PortSuite):
    """Checks a ScheduleStore against the contract in ``atp.core.ports``."""

    @pytest.fixture
    def store(self, clock: Clock) -> ScheduleStore:
        """Override: a fresh, empty ScheduleStore built with ``clock``."""
        missing_fixture(self, "store")

    @pytest.fixture
    def name(self) -> str:
        """A schedule name no other test uses."""
        return unique("sched")

    # -- put -------------------------------------------------------------------------------

    async def test_created_schedules_round_trip_every_field(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        schedule = full_schedule(name, now)
        (stored,) = await store.put_schedules([schedule], now=now)
        expected = schedule.replace(revision=1, created_at=now, updated_at=now)
        assert stored == expected
        assert await store.get_schedules([name]) == [expected]

    @pytest.mark.parametrize("payload", PAYLOADS, ids=payload_id)
    async def test_payloads_round_trip(
        self, store: ScheduleStore, clock: Clock, name: str, payload: Any
    ) -> None:
        now = clock.now()
        await store.put_schedules([make_schedule(name, now, payload=payload)], now=now)
        stored = await stored_schedule(store, name)
        assert stored.payload == payload

    async def test_a_taken_name_is_already_exists_and_nothing_of_the_batch_is_written(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        await store.put_schedules([make_schedule(name, now)], now=now)
        other = unique("sched")
        batch = [make_schedule(other, now), make_schedule(name, now, subject="x.y")]
        with pytest.raises(AlreadyExists, match=name):
            await store.put_schedules(batch, now=now + 1)
        assert await store.get_schedules([other]) == [None]
        kept = await stored_schedule(store, name)
        assert (kept.subject, kept.revision) == (f"{name}.run", 1)

    async def test_a_name_twice_in_one_batch_is_invalid_and_writes_nothing(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        with pytest.raises(InvalidInput):
            await store.put_schedules([make_schedule(name, now)] * 2, now=now)
        assert await store.get_schedules([name]) == [None]

    async def test_a_replace_with_the_current_revision_is_applied(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (first,) = await store.put_schedules([make_schedule(name, now)], now=now)
        changed = first.replace(paused=True, expression="*/5 * * * *", next_tick=now + 300)
        (second,) = await store.put_schedules([changed], now=now + 10)
        assert second == changed.replace(revision=2, created_at=now, updated_at=now + 10)
        assert await store.get_schedules([name]) == [second]

    async def test_a_replace_with_a_stale_revision_is_a_conflict_and_writes_nothing(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (first,) = await store.put_schedules([make_schedule(name, now)], now=now)
        (second,) = await store.put_schedules([first.replace(paused=True)], now=now + 1)
        other = unique("sched")
        batch = [make_schedule(other, now), first.replace(subject="stale.write")]
        with pytest.raises(StateConflict):
            await store.put_schedules(batch, now=now + 2)
        assert await store.get_schedules([name, other]) == [second, None]

    async def test_replacing_a_removed_schedule_is_a_conflict(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (first,) = await store.put_schedules([make_schedule(name, now)], now=now)
        assert await store.remove_schedules([name]) == [True]
        with pytest.raises(StateConflict):
            await store.put_schedules([first.replace(paused=True)], now=now + 1)
        assert await store.get_schedules([name]) == [None]

    async def test_empty_batches_do_nothing(self, store: ScheduleStore) -> None:
        assert await store.put_schedules([], now=1.0) == []
        assert await store.get_schedules([]) == []
        assert await store.remove_schedules([]) == []

    # -- reads and removal -----------------------------------------------------------------

    async def test_get_follows_the_input_order_with_none_for_unknown_names(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (stored,) = await store.put_schedules([make_schedule(name, now)], now=now)
        assert await store.get_schedules(["missing", name, name]) == [None, stored, stored]

    async def test_list_returns_every_schedule_by_name(
        self, store: ScheduleStore, clock: Clock
    ) -> None:
        now = clock.now()
        names = [unique("sched") for _ in range(5)]
        await store.put_schedules([make_schedule(n, now) for n in reversed(names)], now=now)
        listed = await store.list_schedules()
        assert [s.name for s in listed] == sorted(names)

    async def test_remove_reports_per_name_and_keeps_the_others(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        other = unique("sched")
        await store.put_schedules([make_schedule(name, now), make_schedule(other, now)], now=now)
        assert await store.remove_schedules([name, "missing"]) == [True, False]
        assert await store.remove_schedules([name]) == [False]
        assert [s.name for s in await store.list_schedules()] == [other]

    async def test_due_returns_active_schedules_up_to_now_earliest_first(
        self, store: ScheduleStore, clock: Clock
    ) -> None:
        now = clock.now()
        a, b, c, d, e = sorted(unique("sched") for _ in range(5))
        await store.put_schedules(
            [
                make_schedule(a, now, next_tick=now - 5),
                make_schedule(b, now, next_tick=now - 10),
                make_schedule(c, now, next_tick=now - 5),
                make_schedule(d, now, next_tick=now - 20, paused=True),
                make_schedule(e, now, next_tick=now + 1),
            ],
            now=now,
        )
        due = await store.due_schedules(now=now, limit=10)
        assert [s.name for s in due] == [b, a, c]
        assert [s.name for s in await store.due_schedules(now=now, limit=2)] == [b, a]
        assert await store.due_schedules(now=now - 30, limit=10) == []

    async def test_next_tick_is_the_earliest_of_the_active_schedules(
        self, store: ScheduleStore, clock: Clock
    ) -> None:
        now = clock.now()
        assert await store.next_tick() is None
        first, second = unique("sched"), unique("sched")
        await store.put_schedules(
            [
                make_schedule(first, now, next_tick=now + 5, paused=True),
                make_schedule(second, now, next_tick=now + 30),
            ],
            now=now,
        )
        assert await store.next_tick() == now + 30
        assert await store.remove_schedules([second]) == [True]
        assert await store.next_tick() is None

    # -- advance ---------------------------------------------------------------------------

    async def test_advance_records_a_firing_as_a_compare_and_set(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (stored,) = await store.put_schedules([make_schedule(name, now)], now=now)
        advance = Advance(name, stored.revision, now + 7200, last_tick=now + 3600, last_task="t1")
        fence = Fence(unique("fence"), 1)
        assert await store.advance_schedules([advance], now=now + 3601, fence=fence) == [True]
        after = await stored_schedule(store, name)
        assert after == stored.replace(
            next_tick=now + 7200,
            last_tick=now + 3600,
            last_task="t1",
            last_fired_at=now + 3601,
            revision=stored.revision + 1,
        )
        assert await store.due_schedules(now=now + 3601, limit=10) == []
        assert await store.advance_schedules([advance], now=now, fence=fence) == [False]
        assert await store.get_schedules([name]) == [after]

    async def test_an_advance_without_a_firing_keeps_the_last_one(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        schedule = make_schedule(name, now, last_tick=now - 60, last_task="t0", last_fired_at=now)
        (stored,) = await store.put_schedules([schedule], now=now)
        fence = Fence(unique("fence"), 1)
        skip = Advance(name, stored.revision, now + 600)
        assert await store.advance_schedules([skip], now=now + 1, fence=fence) == [True]
        after = await stored_schedule(store, name)
        assert (after.last_tick, after.last_task, after.last_fired_at) == (now - 60, "t0", now)
        assert (after.next_tick, after.revision) == (now + 600, stored.revision + 1)

    async def test_advance_is_per_item(self, store: ScheduleStore, clock: Clock, name: str) -> None:
        now = clock.now()
        (stored,) = await store.put_schedules([make_schedule(name, now)], now=now)
        advances = [
            Advance("missing", 1, now + 60),
            Advance(name, stored.revision + 5, now + 60),
            Advance(name, stored.revision, now + 90),
        ]
        applied = await store.advance_schedules(advances, now=now, fence=Fence(unique("f"), 1))
        assert applied == [False, False, True]
        after = await stored_schedule(store, name)
        assert after.next_tick == now + 90

    async def test_an_old_fence_is_refused_and_changes_nothing(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (stored,) = await store.put_schedules([make_schedule(name, now)], now=now)
        lease = unique("fence")
        assert await store.advance_schedules([], now=now, fence=Fence(lease, 7)) == []
        stale = Advance(name, stored.revision, now + 60, last_tick=now, last_task="t")
        with pytest.raises(FencedOut):
            await store.advance_schedules([stale], now=now, fence=Fence(lease, 6))
        assert await store.get_schedules([name]) == [stored]
        assert await store.advance_schedules([stale], now=now, fence=Fence(lease, 8)) == [True]

    async def test_the_fence_is_shared_with_take_due(
        self, store: ScheduleStore, clock: Clock, name: str
    ) -> None:
        tasks = store if isinstance(store, TaskStore) else None
        if tasks is None:
            pytest.skip("the store is not a TaskStore")
        now = clock.now()
        (stored,) = await store.put_schedules([make_schedule(name, now)], now=now)
        lease = unique("fence")
        await tasks.take_due(now=now, limit=1, ready_until=now + 30, fence=Fence(lease, 3))
        with pytest.raises(FencedOut):
            await store.advance_schedules(
                [Advance(name, stored.revision, now + 1)], now=now, fence=Fence(lease, 2)
            )
        assert await store.get_schedules([name]) == [stored]
