"""The WorkflowStore conformance suite: every guarantee of ``atp.core.ports.WorkflowStore``.

Subclass it under a ``Test`` name and provide a ``store`` fixture, as for
``TaskStoreConformance``::

    class TestMyWorkflows(WorkflowStoreConformance):
        @pytest.fixture
        async def store(self, clock):
            store = make_my_store(clock)   # a fresh, EMPTY store
            yield store
            await store.close()

The store must be empty at the start of each test (listings and due reads see every
run). Time: every method takes its times as arguments (or none), so the suite never
waits; its times are offsets from ``clock.now()``.
"""

from __future__ import annotations

from typing import Any

import pytest

from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.ids import new_id
from atp.core.ports import Clock, WorkflowStore
from atp.core.workflows.definition import Definition, Step, StepKind
from atp.core.workflows.runs import Run, RunQuery, RunState, StepRun, StepState
from atp.sdk.conformance._support import PAYLOADS, PortSuite, missing_fixture, payload_id, unique

__all__ = ["WorkflowStoreConformance"]


def make_definition(name: str, version: int = 1, subject: str = "wf.step") -> Definition:
    """A two-step definition, with every kind of field set somewhere."""
    return Definition(
        name,
        version,
        (
            Step("first", subject=subject, compensate="wf.undo", max_attempts=3, timeout=2.5),
            Step(
                "wait",
                StepKind.SIGNAL,
                ("first",),
                signal="go",
                timeout=60.0,
                when={"all": [{"path": "ok", "op": "eq", "value": True}]},
            ),
            Step("nap", StepKind.SLEEP, ("first", "wait"), duration=1.5),
        ),
    )


def make_run(workflow: str, now: float, **fields: Any) -> Run:
    """A run not stored yet (revision 0)."""
    fields.setdefault("id", new_id(now))
    fields.setdefault("steps", {"first": StepRun(), "wait": StepRun()})
    return Run(workflow=workflow, version=1, created_at=now, updated_at=now, **fields)


class WorkflowStoreConformance(PortSuite):
    """Checks a WorkflowStore against the contract in ``atp.core.ports``."""

    @pytest.fixture
    def store(self, clock: Clock) -> WorkflowStore:
        """Override: a fresh, empty WorkflowStore built with ``clock``."""
        missing_fixture(self, "store")

    @pytest.fixture
    def name(self) -> str:
        """A workflow name no other test uses."""
        return unique("wf")

    # -- definitions -----------------------------------------------------------------------

    async def test_definitions_round_trip_and_the_latest_version_is_found(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        one, two = make_definition(name, 1), make_definition(name, 2, subject="wf.other")
        assert await store.put_definitions([two, one], now=clock.now()) == [True, True]
        assert await store.get_definitions([(name, 1), (name, None), (name, 3)]) == [one, two, None]
        assert await store.get_definitions([(unique("wf"), None)]) == [None]
        assert [d for d in await store.list_definitions() if d.name == name] == [one, two]

    async def test_an_identical_version_again_is_not_created(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        await store.put_definitions([make_definition(name)], now=clock.now())
        assert await store.put_definitions([make_definition(name)], now=clock.now()) == [False]

    async def test_a_changed_version_is_already_exists_and_writes_nothing(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        await store.put_definitions([make_definition(name)], now=clock.now())
        other = unique("wf")
        batch = [make_definition(other), make_definition(name, subject="wf.changed")]
        with pytest.raises(AlreadyExists, match=name):
            await store.put_definitions(batch, now=clock.now())
        assert await store.get_definitions([(other, 1), (name, 1)]) == [None, make_definition(name)]

    async def test_a_version_twice_in_one_batch_is_invalid(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        with pytest.raises(InvalidInput):
            await store.put_definitions([make_definition(name)] * 2, now=clock.now())
        assert await store.get_definitions([(name, 1)]) == [None]

    # -- runs ------------------------------------------------------------------------------

    @pytest.mark.parametrize("value", PAYLOADS, ids=payload_id)
    async def test_runs_round_trip_every_field(
        self, store: WorkflowStore, clock: Clock, name: str, value: Any
    ) -> None:
        now = clock.now()
        step = StepRun(
            StepState.SUCCEEDED,
            "task-1",
            2,
            value,
            "boom",
            now,
            now + 1.5,
            now + 9,
            StepState.ACTIVE,
            "task-2",
        )
        run = make_run(
            name,
            now,
            input=value,
            steps={"first": step, "wait": StepRun()},
            signals={"go": value},
            result=value,
            error="e",
            finished_at=now + 2,
            wake_at=now + 3,
            state=RunState.COMPENSATING,
        )
        (stored,) = await store.create_runs([run])
        assert stored == run.replace(revision=1)
        assert await store.get_runs([run.id, "unknown"]) == [stored, None]

    async def test_a_taken_run_id_is_already_exists_and_writes_nothing(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (first,) = await store.create_runs([make_run(name, now)])
        fresh = make_run(name, now)
        with pytest.raises(AlreadyExists):
            await store.create_runs([fresh, make_run(name, now, id=first.id, input=1)])
        assert await store.get_runs([fresh.id, first.id]) == [None, first]

    async def test_an_update_is_a_compare_and_set_on_the_revision(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        (stored,) = await store.create_runs([make_run(name, now)])
        changed = stored.replace(state=RunState.SUCCEEDED, wake_at=None, result={"x": 1})
        stale = stored.replace(error="stale")
        missing = make_run(name, now, revision=1)
        assert await store.update_runs([changed, stale, missing]) == [True, False, False]
        assert await store.get_runs([stored.id, missing.id]) == [changed.replace(revision=2), None]

    async def test_two_updates_from_one_revision_land_once(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        (stored,) = await store.create_runs([make_run(name, clock.now())])
        first, second = stored.replace(error="first"), stored.replace(error="second")
        assert await store.update_runs([first]) == [True]
        assert await store.update_runs([second]) == [False]
        (kept,) = await store.get_runs([stored.id])
        assert kept is not None
        assert (kept.error, kept.revision) == ("first", 2)

    async def test_runs_list_newest_first_with_filters_and_cursor(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        runs = [make_run(name, now + i, id=new_id(now + i)) for i in range(5)]
        runs[1] = runs[1].replace(state=RunState.FAILED)
        await store.create_runs([*runs, make_run(unique("wf"), now)])
        first = await store.list_runs(RunQuery(workflow=name, limit=3))
        assert [r.id for r in first.items] == [r.id for r in runs[::-1][:3]]
        second = await store.list_runs(RunQuery(workflow=name, cursor=first.next_cursor, limit=3))
        assert [r.id for r in second.items] == [runs[1].id, runs[0].id]
        assert second.next_cursor is None
        failed = await store.list_runs(RunQuery(states=frozenset({RunState.FAILED})))
        assert [r.id for r in failed.items] == [runs[1].id]

    async def test_due_runs_are_active_runs_past_their_wake_up_earliest_first(
        self, store: WorkflowStore, clock: Clock, name: str
    ) -> None:
        now = clock.now()
        late = make_run(name, now, wake_at=now - 5)
        early = make_run(name, now, wake_at=now - 50, state=RunState.COMPENSATING)
        future = make_run(name, now, wake_at=now + 5)
        finished = make_run(name, now, wake_at=now - 99, state=RunState.SUCCEEDED)
        never = make_run(name, now)
        await store.create_runs([late, early, future, finished, never])
        due = await store.due_runs(now=now, limit=10)
        assert [r.id for r in due] == [early.id, late.id]
        assert [r.id for r in await store.due_runs(now=now, limit=1)] == [early.id]
        assert [r.id for r in await store.due_runs(now=now + 5, limit=10)][-1] == future.id
