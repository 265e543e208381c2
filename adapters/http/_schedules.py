"""The ``/v1/schedules`` routes: cron schedules CRUD, pause, resume and trigger.

Reading needs scope ``read``; every change needs ``admin``. A bad expression, an
unknown time zone or a taken name is a 4xx problem and changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from atp.adapters.http._models import SUBJECT_PATTERN, PublishedOut, _Strict
from atp.adapters.http._routes import Ops, Who, _problems
from atp.core.cron.expression import MAX_LENGTH as MAX_EXPRESSION
from atp.core.schedules import Schedule, schedule_to_dict
from atp.core.subjects import MAX_SUBJECT_LENGTH

__all__ = ["ScheduleIn", "ScheduleListOut", "ScheduleOut", "router"]

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class ScheduleIn(_Strict):
    """A new cron schedule: publish ``payload`` to ``subject`` at each tick of
    ``expression``, read in the IANA time zone ``tz``."""

    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN})
    expression: str = Field(
        max_length=MAX_EXPRESSION,
        description="Five fields, six with seconds first, or a macro such as @hourly",
    )
    subject: str = Field(
        max_length=MAX_SUBJECT_LENGTH, json_schema_extra={"pattern": SUBJECT_PATTERN}
    )
    payload: Any = Field(None, description="Any JSON value")
    tz: str = Field("UTC", max_length=128, description="IANA time zone, e.g. Europe/Paris")
    misfire: Literal["skip", "once", "all"] = Field(
        "once", description="What to fire for ticks missed during downtime"
    )
    overlap: Literal["allow", "skip"] = Field(
        "allow", description="skip: no tick while the last firing's task has not finished"
    )


class ScheduleOut(BaseModel):
    """A schedule: its definition and how far firing has got (times: epoch seconds)."""

    name: str
    expression: str
    subject: str
    payload: Any = None
    tz: str
    misfire: str
    overlap: str
    paused: bool
    next_tick: float
    last_tick: float | None
    last_task: str | None
    last_fired_at: float | None
    created_at: float
    updated_at: float
    revision: int

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleOut:
        return cls(**schedule_to_dict(schedule))


class ScheduleListOut(BaseModel):
    """Every schedule, by name."""

    items: list[ScheduleOut]


@router.post("", status_code=201, response_model=ScheduleOut, responses=_problems(409))
async def add_schedule(body: ScheduleIn, ops: Ops, who: Who) -> ScheduleOut:
    """Store a new schedule (scope ``admin``); it first fires at its next tick after now.
    409 ``already-exists`` for a taken name."""
    schedule = await ops.schedules.add(who, **body.model_dump())
    return ScheduleOut.of(schedule)


@router.get("", response_model=ScheduleListOut, responses=_problems())
async def list_schedules(ops: Ops, who: Who) -> ScheduleListOut:
    """Every schedule, by name (scope ``read``)."""
    return ScheduleListOut(items=[ScheduleOut.of(s) for s in await ops.schedules.list(who)])


@router.get("/{name}", response_model=ScheduleOut, responses=_problems(404))
async def get_schedule(name: str, ops: Ops, who: Who) -> ScheduleOut:
    """One schedule (scope ``read``)."""
    return ScheduleOut.of(await ops.schedules.get(who, name))


@router.post("/{name}/pause", response_model=ScheduleOut, responses=_problems(404, 409))
async def pause_schedule(name: str, ops: Ops, who: Who) -> ScheduleOut:
    """Stop firing until resumed (scope ``admin``); pausing a paused schedule is a no-op."""
    return ScheduleOut.of(await ops.schedules.pause(who, name))


@router.post("/{name}/resume", response_model=ScheduleOut, responses=_problems(404, 409))
async def resume_schedule(name: str, ops: Ops, who: Who) -> ScheduleOut:
    """Fire again from the next tick after now (scope ``admin``); ticks missed while
    paused are not fired."""
    return ScheduleOut.of(await ops.schedules.resume(who, name))


@router.post("/{name}/trigger", response_model=PublishedOut, responses=_problems(404))
async def trigger_schedule(name: str, ops: Ops, who: Who) -> PublishedOut:
    """Publish the schedule's task now, once, outside its timetable (scope ``admin``)."""
    return PublishedOut.of(await ops.schedules.trigger(who, name))


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted"}, **_problems(404)},
)
async def remove_schedule(name: str, ops: Ops, who: Who) -> Response:
    """Delete the schedule (scope ``admin``); the tasks it fired stay."""
    await ops.schedules.remove(who, name)
    return Response(status_code=204)
