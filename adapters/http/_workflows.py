"""The ``/v1/workflows`` and ``/v1/runs`` routes: definitions and their runs.

Reading needs ``read``; registering a definition needs ``admin``; starting, signalling
and cancelling a run need ``publish`` on every subject the definition publishes to.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from atp.adapters.http._models import SUBJECT_PATTERN, Attempts, Number, Version, _Strict
from atp.adapters.http._routes import Limit, Ops, Who, _problems
from atp.core.subjects import MAX_SUBJECT_LENGTH
from atp.core.workflows.definition import (
    MAX_DURATION,
    MAX_STEPS,
    NAME,
    Definition,
    definition_to_dict,
)
from atp.core.workflows.runs import Run, RunPage, RunState, run_to_dict

__all__ = ["DefinitionIn", "DefinitionOut", "RunOut", "RunPageOut", "router"]

router = APIRouter(prefix="/v1", tags=["workflows"])
Name = Annotated[str, Field(max_length=128, json_schema_extra={"pattern": f"^{NAME.pattern}$"})]
"""A workflow, step or signal name (the core checks it)."""
Subject = Annotated[
    str, Field(max_length=MAX_SUBJECT_LENGTH, json_schema_extra={"pattern": SUBJECT_PATTERN})
]


class StepIn(_Strict):
    """One step of a definition; which fields apply depends on ``kind`` (docs/workflows.md)."""

    name: Name
    kind: Literal["task", "signal", "sleep"] = "task"
    after: list[Name] = Field(
        default_factory=list, max_length=MAX_STEPS, description="The parents' step names"
    )
    subject: Subject | None = Field(None, description="task: the subject of its task")
    compensate: Subject | None = Field(None, description="task: the subject that undoes it")
    when: dict[str, Any] | None = Field(None, description="A condition over the parents' results")
    max_attempts: Attempts | None = None
    timeout: Annotated[Number, Field(gt=0, le=MAX_DURATION)] | None = Field(
        None, description="task: per attempt; signal: the wait"
    )
    signal: Name | None = Field(None, description="signal: the signal's name")
    duration: Annotated[Number, Field(ge=0, le=MAX_DURATION)] | None = Field(
        None, description="sleep: seconds to wait"
    )


class DefinitionIn(_Strict):
    """A workflow definition in its JSON form: a versioned DAG of steps."""

    name: Name
    version: Version
    steps: list[StepIn] = Field(max_length=MAX_STEPS)

    def data(self) -> dict[str, Any]:
        """The JSON object as sent (fields left out stay out)."""
        return self.model_dump(exclude_unset=True)


class StepOut(BaseModel):
    """One step of a stored definition; fields that do not apply are null."""

    name: str
    kind: str
    after: list[str] = Field(default_factory=list)
    subject: str | None = None
    compensate: str | None = None
    when: dict[str, Any] | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    signal: str | None = None
    duration: float | None = None


class DefinitionOut(BaseModel):
    """A stored workflow definition."""

    name: str
    version: int
    steps: list[StepOut]

    @classmethod
    def of(cls, definition: Definition) -> DefinitionOut:
        return cls.model_validate(definition_to_dict(definition))


class DefinitionListOut(BaseModel):
    """Every registered definition, by name, then version."""

    items: list[DefinitionOut]


class RegisteredOut(BaseModel):
    """A registered definition; ``created`` is false when it was stored already."""

    name: str
    version: int
    created: bool


class StartIn(_Strict):
    """How to start a run: its input, and optionally a version and the run's id (a retried
    start with the same ``run_id`` is 409 ``already-exists``, never a second run)."""

    input: Any = Field(default=None, description="Any JSON value")
    version: Version | None = Field(default=None, description="Default: the latest version")
    run_id: str | None = Field(default=None, min_length=1, max_length=128)


class SignalIn(_Strict):
    """A signal for a run: the workflow's signal step of that name receives ``payload``."""

    name: str = Field(min_length=1, max_length=128)
    payload: Any = Field(None, description="Any JSON value")


class StepRunOut(BaseModel):
    """One step in one run: its state, task, attempts, result, error and timings."""

    state: str
    task_id: str | None
    attempts: int
    result: Any = None
    error: str | None
    started_at: float | None
    finished_at: float | None
    deadline: float | None
    compensation: str | None
    compensation_task: str | None


class RunOut(BaseModel):
    """One run of one definition version; ``steps`` in the definition's order."""

    id: str
    workflow: str
    version: int
    state: str
    input: Any = None
    steps: dict[str, StepRunOut]
    signals: dict[str, Any]
    result: Any = None
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    wake_at: float | None
    revision: int

    @classmethod
    def of(cls, run: Run) -> RunOut:
        return cls.model_validate(run_to_dict(run))


class RunPageOut(BaseModel):
    """One page of runs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[RunOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: RunPage) -> RunPageOut:
        return cls(items=[RunOut.of(r) for r in page.items], next_cursor=page.next_cursor)


@router.post(
    "/workflows",
    status_code=201,
    response_model=RegisteredOut,
    responses={200: {"model": RegisteredOut, "description": "Stored already"}, **_problems(409)},
)
async def register_workflow(
    body: DefinitionIn, response: Response, ops: Ops, who: Who
) -> RegisteredOut:
    """Store a definition (scope ``admin``): 201 when new, 200 when this version is
    stored already with the same steps, 409 ``already-exists`` with other steps."""
    definition, created = await ops.workflows.register(who, body.data())
    if not created:
        response.status_code = 200
    return RegisteredOut(name=definition.name, version=definition.version, created=created)


@router.get("/workflows", response_model=DefinitionListOut, responses=_problems())
async def list_workflows(ops: Ops, who: Who) -> DefinitionListOut:
    """Every registered definition, by name, then version (scope ``read``)."""
    found = await ops.workflows.definitions(who)
    return DefinitionListOut(items=[DefinitionOut.of(d) for d in found])


@router.get("/workflows/{name}", response_model=DefinitionOut, responses=_problems(404))
async def get_workflow(
    name: str, ops: Ops, who: Who, version: Annotated[int | None, Query(ge=1)] = None
) -> DefinitionOut:
    """A definition at ``version``, the latest by default (scope ``read``)."""
    return DefinitionOut.of(await ops.workflows.definition(who, name, version))


@router.post(
    "/workflows/{name}/runs", status_code=201, response_model=RunOut, responses=_problems(404, 409)
)
async def start_run(name: str, ops: Ops, who: Who, body: StartIn | None = None) -> RunOut:
    """Start a run (scope ``publish`` on every subject of the definition); the steps
    without parents are enqueued at once."""
    body = body or StartIn()
    run = await ops.workflows.start(who, name, body.input, version=body.version, run_id=body.run_id)
    return RunOut.of(run)


@router.get("/runs", response_model=RunPageOut, responses=_problems())
async def list_runs(
    ops: Ops,
    who: Who,
    workflow: str | None = None,
    state: Annotated[list[RunState] | None, Query(max_length=len(RunState))] = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> RunPageOut:
    """Runs newest first, by workflow name and states (scope ``read``)."""
    page = await ops.workflows.list(
        who, workflow=workflow, states=state, cursor=cursor, limit=limit
    )
    return RunPageOut.of(page)


@router.get("/runs/{run_id}", response_model=RunOut, responses=_problems(404))
async def get_run(run_id: str, ops: Ops, who: Who) -> RunOut:
    """A run: each step's state, task id, attempts, result, error and timings (``read``)."""
    return RunOut.of(await ops.workflows.get(who, run_id))


@router.post("/runs/{run_id}/signals", response_model=RunOut, responses=_problems(404, 409))
async def signal_run(run_id: str, body: SignalIn, ops: Ops, who: Who) -> RunOut:
    """Deliver a signal (scope ``publish`` on the definition's subjects). 400 if the
    workflow waits for no such signal; 409 if the run is over or had it already."""
    return RunOut.of(await ops.workflows.signal(who, run_id, body.name, body.payload))


@router.delete("/runs/{run_id}", response_model=RunOut, responses=_problems(404, 409))
async def cancel_run(run_id: str, ops: Ops, who: Who) -> RunOut:
    """Cancel a run (scope ``publish`` on the definition's subjects): pending steps are
    cancelled, running step tasks asked to stop, no compensation. Twice is a no-op; 409
    for a run that succeeded or failed."""
    return RunOut.of(await ops.workflows.cancel(who, run_id))
