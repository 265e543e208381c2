"""Schedule and workflow operations of the APIs in process (memory backends, ManualClock):
the scope each one needs, and the protobuf conversions both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from atp.adapters._api.operations import Operations
from atp.adapters._api.workflows import published_subjects
from atp.adapters._auth import Principal, ServerSettings, parse_scopes
from atp.core.clock import ManualClock
from atp.core.errors import InvalidInput, PermissionDenied
from atp.core.platform import Platform
from atp.core.schedules import Misfire, Overlap, Schedule
from atp.core.settings import Settings
from atp.core.workflows.definition import definition_from_dict
from atp.core.workflows.runs import Run, RunPage, RunState, StepRun, StepState
from atp.sdk.wire import flows

MEMORY = Settings(store="memory://", transport="memory://", coordinator="memory://")
DEFINITION = {
    "name": "ship",
    "version": 1,
    "steps": [
        {"name": "pick", "subject": "orders.pick", "compensate": "orders.unpick"},
        {"name": "nap", "kind": "sleep", "duration": 5, "after": ["pick"]},
        {"name": "send", "subject": "mail.send", "after": ["nap"]},
        {"name": "again", "subject": "orders.pick", "after": ["send"]},
    ],
}


def who(*scopes: str) -> Principal:
    return Principal("t", parse_scopes(scopes))


@pytest.fixture
async def ops() -> AsyncIterator[Operations]:
    platform = Platform.build(MEMORY, clock=ManualClock(1_800_000_000.0), local=True)
    yield Operations(platform, ServerSettings())
    await platform.close()


def test_a_run_needs_publish_on_its_task_and_compensation_subjects_only():
    definition = definition_from_dict(DEFINITION)
    assert published_subjects(definition) == ["orders.pick", "orders.unpick", "mail.send"]


async def test_workflow_operations_check_scopes_before_writing(ops):
    admin = who("admin")
    with pytest.raises(PermissionDenied):
        await ops.workflows.register(who("read", "publish:>"), DEFINITION)
    with pytest.raises(InvalidInput):  # input is checked before scopes
        await ops.workflows.register(who("read"), {"name": "x"})
    assert await ops.workflows.definitions(admin) == []
    assert (await ops.workflows.register(admin, DEFINITION))[1]
    for scopes in (("publish:orders.*", "read"), ("publish:orders.pick", "publish:mail.*")):
        with pytest.raises(PermissionDenied):
            await ops.workflows.start(who(*scopes), "ship", None, version=None, run_id=None)
    publisher = who("publish:orders.*", "publish:mail.>")
    run = await ops.workflows.start(publisher, "ship", {"a": 1}, version=None, run_id="r1")
    with pytest.raises(PermissionDenied):
        await ops.workflows.cancel(who("publish:orders.*"), run.id)
    with pytest.raises(PermissionDenied):
        await ops.workflows.get(publisher, run.id)
    with pytest.raises(InvalidInput):
        await ops.workflows.list(admin, workflow=None, states=None, cursor=None, limit=0)
    page = await ops.workflows.list(
        who("read"), workflow="ship", states=None, cursor=None, limit=10
    )
    assert [r.id for r in page.items] == ["r1"]
    assert (await ops.workflows.cancel(publisher, run.id)).state is RunState.CANCELLED


async def test_schedule_operations_need_admin_to_change_and_read_to_look(ops):
    fields = {
        "name": "beat",
        "expression": "@hourly",
        "subject": "orders.beat",
        "payload": None,
        "tz": "UTC",
        "misfire": "once",
        "overlap": "allow",
    }
    with pytest.raises(PermissionDenied):
        await ops.schedules.add(who("read", "publish:>"), **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await ops.schedules.add(who("read"), **{**fields, "tz": "No/Where"})  # type: ignore[arg-type]
    added = await ops.schedules.add(who("admin"), **fields)  # type: ignore[arg-type]
    for change in (
        ops.schedules.pause,
        ops.schedules.resume,
        ops.schedules.trigger,
        ops.schedules.remove,
    ):
        with pytest.raises(PermissionDenied):
            await change(who("read", "publish:>"), "beat")
    with pytest.raises(PermissionDenied):
        await ops.schedules.list(who("publish:>"))
    assert await ops.schedules.get(who("read"), "beat") == added


def test_schedules_and_runs_survive_the_protobuf_round_trip():
    schedule = Schedule(
        "beat",
        "0 9 * * 1-5",
        "orders.beat",
        {"n": [1, 2]},
        "Europe/Paris",
        Misfire.ALL,
        Overlap.SKIP,
        True,
        1.5e9,
        1.4e9,
        "t1",
        1.4e9 + 1,
        1.0,
        2.0,
        3,
    )
    bare = Schedule("bare", "@daily", "orders.bare")
    for item in (schedule, bare):
        assert flows.schedule_in(flows.schedule_out(item)) == item
    # fmt: off
    steps = {
        "pick": StepRun(StepState.SUCCEEDED, "t1", 2, {"ok": True}, None, 1.0, 2.0, None,
                        StepState.ACTIVE, "t9"),
        "wait": StepRun(StepState.ACTIVE, deadline=99.0),
        "send": StepRun(StepState.FAILED, error="boom", result=0),
    }
    run = Run("r1", "ship", 2, RunState.COMPENSATING, {"in": 1}, steps, {"go": None, "b": 2},
              None, "step send failed", 1.0, 2.0, None, 3.0, 7)
    # fmt: on
    assert flows.run_in(flows.run_out(run)) == run
    page = RunPage([run, Run("r2", "ship", 1)], "cursor")
    assert flows.run_page_in(flows.run_page_out(page)) == page
    definition = definition_from_dict(DEFINITION)
    assert flows.definition_in(flows.definition_out(definition)) == definition
