"""The ``/v1/limits`` and ``/v1/pauses`` routes: flow control (ADR 0038).

Reading needs scope ``read``; setting or removing a limit, pausing and resuming need
``admin``. A malformed rule is a 400 problem and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from atp.adapters.http._models import (
    PATTERN_PATTERN,
    FlowStatusOut,
    LimitIn,
    LimitOut,
    PauseIn,
    PauseOut,
    ResumeOut,
)
from atp.adapters.http._routes import Ops, Who, _problems
from atp.core.flow.rules import MAX_KEY_LENGTH
from atp.core.subjects import MAX_SUBJECT_LENGTH

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["flow control"])

Target = Annotated[
    str,
    Query(
        min_length=1,
        max_length=max(MAX_SUBJECT_LENGTH, MAX_KEY_LENGTH + 1),
        description="The limit's subject pattern, or key pattern when key is true",
    ),
]
KeyFlag = Annotated[bool, Query(description="true: target is a key pattern")]
Pattern = Annotated[
    str,
    Query(
        max_length=MAX_SUBJECT_LENGTH,
        description="A paused subject pattern, e.g. orders.*",
        json_schema_extra={"pattern": PATTERN_PATTERN},
    ),
]


@router.get("/limits", response_model=FlowStatusOut, responses=_problems())
async def flow_status(ops: Ops, who: Who) -> FlowStatusOut:
    """Every limit and paused pattern, how many tasks wait behind each full slot and
    pause, and the rules' version (scope ``read``)."""
    return FlowStatusOut.of(await ops.flow.status(who))


@router.put("/limits", response_model=LimitOut, responses=_problems())
async def set_limit(body: LimitIn, ops: Ops, who: Who) -> LimitOut:
    """Create or replace the limit on ``target`` (scope ``admin``); every worker applies
    it from its next look at the rules. Answers the limit as stored."""
    limit = body.limit()
    return LimitOut.of(await ops.flow.set_limit(who, limit))


@router.delete(
    "/limits",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Removed"}, **_problems(404)},
)
async def remove_limit(target: Target, ops: Ops, who: Who, key: KeyFlag = False) -> Response:
    """Remove the limit on ``target`` (scope ``admin``); 404 if there is none."""
    await ops.flow.remove_limit(who, target, key=key)
    return Response(status_code=204)


@router.post("/pauses", response_model=PauseOut, responses=_problems())
async def pause(body: PauseIn, ops: Ops, who: Who) -> PauseOut:
    """Stop workers taking tasks of subjects matching ``pattern`` (scope ``admin``);
    running tasks finish. ``changed`` is false if it was paused already."""
    changed = await ops.flow.pause(who, body.pattern)
    return PauseOut(pattern=body.pattern, changed=changed)


@router.delete("/pauses", response_model=ResumeOut, responses=_problems(404))
async def resume(pattern: Pattern, ops: Ops, who: Who) -> ResumeOut:
    """Resume the paused ``pattern`` and wake the tasks it held (scope ``admin``); 404
    if it is not paused. A subject another paused pattern matches stays held."""
    return ResumeOut(woken=await ops.flow.resume(who, pattern))
