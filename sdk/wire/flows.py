"""Between protobuf messages and schedules, workflow definitions and runs, both ways
(the server sends them out; the SDK's gRPC client reads them back)."""

from __future__ import annotations

from typing import Any

from atp.core import codec
from atp.core.schedules import Misfire, Overlap, Schedule
from atp.core.workflows.definition import Definition, definition_from_dict, definition_to_dict
from atp.core.workflows.runs import Run, RunPage, RunState, StepRun, StepState
from atp.sdk.wire.pb import schedules_pb2 as spb
from atp.sdk.wire.pb import workflows_pb2 as wpb
from atp.sdk.wire.tasks import field_or_none, json_in, json_out, set_optional

__all__ = [
    "add_schedule_out",
    "definition_in",
    "definition_out",
    "run_in",
    "run_out",
    "run_page_in",
    "run_page_out",
    "schedule_in",
    "schedule_out",
]

_SCHEDULE_OPTIONAL = ("last_tick", "last_task", "last_fired_at")
_STEP_OPTIONAL = ("task_id", "error", "started_at", "finished_at", "deadline", "compensation_task")
_RUN_OPTIONAL = ("error", "finished_at", "wake_at")


def schedule_out(schedule: Schedule) -> spb.Schedule:
    message = spb.Schedule(
        **_schedule_fields(schedule),
        paused=schedule.paused,
        next_tick=schedule.next_tick,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
        revision=schedule.revision,
    )
    set_optional(message, schedule, _SCHEDULE_OPTIONAL)
    return message


def schedule_in(message: spb.Schedule) -> Schedule:
    return Schedule(
        name=message.name,
        expression=message.expression,
        subject=message.subject,
        payload=json_in(message.payload, "payload"),
        tz=message.tz,
        misfire=Misfire(message.misfire),
        overlap=Overlap(message.overlap),
        paused=message.paused,
        next_tick=message.next_tick,
        created_at=message.created_at,
        updated_at=message.updated_at,
        revision=message.revision,
        **{name: field_or_none(message, name) for name in _SCHEDULE_OPTIONAL},
    )


def add_schedule_out(schedule: Schedule) -> spb.AddScheduleRequest:
    """The request that stores ``schedule`` (its definition; the server sets the rest)."""
    return spb.AddScheduleRequest(**_schedule_fields(schedule))


def _schedule_fields(schedule: Schedule) -> dict[str, Any]:
    """The fields a schedule is defined by, as both messages name them."""
    return {
        "name": schedule.name,
        "expression": schedule.expression,
        "subject": schedule.subject,
        "payload": json_out(schedule.payload),
        "tz": schedule.tz,
        "misfire": schedule.misfire.value,
        "overlap": schedule.overlap.value,
    }


def definition_out(definition: Definition) -> wpb.WorkflowDefinition:
    text = codec.dumps(definition_to_dict(definition))
    return wpb.WorkflowDefinition(name=definition.name, version=definition.version, definition=text)


def definition_in(message: wpb.WorkflowDefinition) -> Definition:
    return definition_from_dict(json_in(message.definition, "definition"))


def _step_out(name: str, step: StepRun) -> wpb.StepRun:
    message = wpb.StepRun(
        name=name, state=step.state.value, attempts=step.attempts, result=json_out(step.result)
    )
    set_optional(message, step, _STEP_OPTIONAL)
    if step.compensation is not None:
        message.compensation = step.compensation.value
    return message


def _step_in(message: wpb.StepRun) -> StepRun:
    compensation = field_or_none(message, "compensation")
    return StepRun(
        state=StepState(message.state),
        attempts=message.attempts,
        result=json_in(message.result, "result"),
        compensation=None if compensation is None else StepState(compensation),
        **{name: field_or_none(message, name) for name in _STEP_OPTIONAL},
    )


def run_out(run: Run) -> wpb.Run:
    message = wpb.Run(
        id=run.id,
        workflow=run.workflow,
        version=run.version,
        state=run.state.value,
        input=json_out(run.input),
        steps=[_step_out(n, s) for n, s in run.steps.items()],
        signals={name: codec.dumps(value) for name, value in run.signals.items()},
        result=json_out(run.result),
        created_at=run.created_at,
        updated_at=run.updated_at,
        revision=run.revision,
    )
    set_optional(message, run, _RUN_OPTIONAL)
    return message


def run_in(message: wpb.Run) -> Run:
    return Run(
        id=message.id,
        workflow=message.workflow,
        version=message.version,
        state=RunState(message.state),
        input=json_in(message.input, "input"),
        steps={step.name: _step_in(step) for step in message.steps},
        signals={name: json_in(value, "signal") for name, value in message.signals.items()},
        result=json_in(message.result, "result"),
        created_at=message.created_at,
        updated_at=message.updated_at,
        revision=message.revision,
        **{name: field_or_none(message, name) for name in _RUN_OPTIONAL},
    )


def run_page_out(page: RunPage) -> wpb.RunPage:
    message = wpb.RunPage(items=[run_out(run) for run in page.items])
    if page.next_cursor is not None:
        message.next_cursor = page.next_cursor
    return message


def run_page_in(message: wpb.RunPage) -> RunPage:
    items = [run_in(item) for item in message.items]
    return RunPage(items, field_or_none(message, "next_cursor"))
