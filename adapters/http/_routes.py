"""The ``/v1`` routes: tasks and dead letters. Every route names the scope it needs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard, Principal
from atp.adapters.http._models import (
    PATTERN_PATTERN,
    BatchIn,
    BatchOut,
    CountOut,
    CountsOut,
    PageOut,
    Problem,
    PublishedOut,
    PurgeIn,
    PurgeOut,
    RequeueIn,
    TaskIn,
    TaskOut,
)
from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.listing import parse_instant
from atp.core.model import State
from atp.core.subjects import MAX_SUBJECT_LENGTH

__all__ = ["router"]

router = APIRouter(prefix="/v1")
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer atp_<id>.<secret>")


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    shared = (400, 401, 403, 413, 429, 503)
    content = {"application/problem+json": {"schema": Problem.model_json_schema()}}
    return {
        status: {"model": Problem, "content": content, "description": "A problem document"}
        for status in sorted({*shared, *statuses})
    }


def operations(request: Request) -> Operations:
    ops: Operations = request.app.state.operations
    return ops


async def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """Authenticate the request and spend one request of the token's rate limit.

    ``credentials`` is unused: it declares the bearer scheme in the OpenAPI document."""
    guard: Guard = request.app.state.guard
    return await guard.admit(request.headers.get("authorization"))


Who = Annotated[Principal, Depends(caller)]
Ops = Annotated[Operations, Depends(operations)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,  # with ":<index>" added in a batch, within core's 255
        description="Returns the existing task for a repeated key (batch: <key>:<index>)",
    ),
]
Limit = Annotated[int, Query(ge=1, description="Page size, up to the server's max_page")]
SubjectFilter = Annotated[
    str | None,
    Query(
        max_length=MAX_SUBJECT_LENGTH,
        description="Subject pattern, e.g. orders.*",
        json_schema_extra={"pattern": PATTERN_PATTERN},
    ),
]

CreatedTime = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="RFC 3339 (naive is UTC), e.g. 2030-01-02T03:04:05Z, or seconds since "
        "the epoch",
    ),
]


@router.post(
    "/tasks",
    status_code=201,
    response_model=PublishedOut,
    responses={
        200: {"model": PublishedOut, "description": "Idempotency key matched"},
        **_problems(409),
    },
)
async def publish(
    body: TaskIn, response: Response, ops: Ops, who: Who, key: IdempotencyKey = None
) -> PublishedOut:
    """Publish one task (scope ``publish:<subject>``). 201 when created, 200 when an
    idempotency key matched an existing task with the same parameters (nothing created),
    409 ``idempotency-conflict`` when it matched one with other parameters, 409
    ``key-active`` when ``dedup`` is unique and the key's task is queued or running. A
    debounce answers the task it replaced as ``replaced``; a throttled publish answers
    200 with the key's earlier task."""
    (published,) = await ops.publish(who, [body.request(key)])
    if not published.created:
        response.status_code = 200
    return PublishedOut.of(published)


@router.post(
    "/tasks/batch",
    response_model=BatchOut,
    responses=_problems(409),
    openapi_extra={"requestBody": BatchIn.request_body()},
)
async def publish_batch(
    request: Request, ops: Ops, who: Who, key: IdempotencyKey = None
) -> BatchOut:
    """Publish tasks in one store call: all accepted, or none on bad input or scope
    (``publish:`` on each subject). The token, then the batch's length and subjects are
    checked before its tasks are validated, so a huge batch is refused at once. 409
    ``idempotency-conflict`` or ``key-active`` as for a single publish."""
    body = await _batch(request, ops, who)
    requests = [
        item.request(None if key is None else f"{key}:{index}")
        for index, item in enumerate(body.tasks)
    ]
    published = await ops.publish(who, requests)
    return BatchOut(tasks=[PublishedOut.of(p) for p in published])


async def _batch(request: Request, ops: Operations, who: Principal) -> BatchIn:
    """The batch body, read as JSON, its size and subjects checked, then validated."""
    try:
        data = await request.json()
    except ValueError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from exc
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if isinstance(tasks, list):
        ops.check_batch(who, [t.get("subject", "") if isinstance(t, dict) else "" for t in tasks])
    try:
        return BatchIn.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


@router.get("/tasks", response_model=PageOut, responses=_problems())
async def list_tasks(
    ops: Ops,
    who: Who,
    subject: SubjectFilter = None,
    state: Annotated[list[State] | None, Query(max_length=len(State))] = None,
    cursor: str | None = None,
    limit: Limit = 100,
    created_after: CreatedTime = None,
    created_before: CreatedTime = None,
    idempotency_key: Annotated[
        str | None, Query(min_length=1, description="The key's task; needs the exact subject")
    ] = None,
) -> PageOut:
    """List tasks newest first, by subject pattern, states, creation time (after:
    inclusive, before: exclusive) and idempotency key (scope ``read``)."""
    page = await ops.query(
        who,
        subject=subject,
        states=state,
        cursor=cursor,
        limit=limit,
        created_after=_instant(created_after, "created_after"),
        created_before=_instant(created_before, "created_before"),
        idempotency_key=idempotency_key,
    )
    return PageOut.of(page)


def _instant(value: str | None, what: str) -> float | None:
    return None if value is None else parse_instant(value, what)


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=_problems(404))
async def get_task(task_id: str, ops: Ops, who: Who) -> TaskOut:
    """One task's record (scope ``read``)."""
    return TaskOut.of(await ops.get(who, task_id))


@router.delete("/tasks/{task_id}", response_model=TaskOut, responses=_problems(404, 409))
async def cancel_task(task_id: str, ops: Ops, who: Who) -> TaskOut:
    """Cancel a task that has not finished (scope ``publish:<its subject>`` or ``admin``).

    A running task is asked to stop: its record says ``cancel_requested``."""
    return TaskOut.of(await ops.cancel(who, task_id))


@router.get("/counts", response_model=CountsOut, responses=_problems())
async def counts(ops: Ops, who: Who) -> CountsOut:
    """How many tasks each subject holds in each state (scope ``read``)."""
    found = await ops.counts(who)
    return CountsOut(
        counts=[CountOut(subject=s, state=str(st), count=n) for (s, st), n in sorted(found.items())]
    )


@router.get("/dead-letters", response_model=PageOut, responses=_problems())
async def dead_letters(
    ops: Ops,
    who: Who,
    subject: SubjectFilter = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> PageOut:
    """Dead tasks, newest first, each with its error history (scope ``read``)."""
    return PageOut.of(await ops.dead_letters(who, subject=subject, cursor=cursor, limit=limit))


@router.get("/dead-letters/{task_id}", response_model=TaskOut, responses=_problems(404))
async def dead_letter(task_id: str, ops: Ops, who: Who) -> TaskOut:
    """One dead task; 404 if it is unknown or not dead (scope ``read``)."""
    return TaskOut.of(await ops.dead_letter(who, task_id))


@router.post(
    "/dead-letters/{task_id}/requeue", response_model=TaskOut, responses=_problems(404, 409)
)
async def requeue(task_id: str, ops: Ops, who: Who, body: RequeueIn | None = None) -> TaskOut:
    """Give a dead task a new life (scope ``admin``): attempts reset, after ``delay``,
    with ``payload`` replacing the old one when the field is present."""
    body = body or RequeueIn()
    delay = None if body.delay is None else parse_duration(body.delay, "delay")
    replace = "payload" in body.model_fields_set
    record = await ops.requeue(
        who, task_id, delay=delay, payload=body.payload, replace_payload=replace
    )
    return TaskOut.of(record)


@router.post("/dead-letters/purge", response_model=PurgeOut, responses=_problems())
async def purge(body: PurgeIn, ops: Ops, who: Who) -> PurgeOut:
    """Delete dead tasks: ``ids``, or all when ``ids`` is null (scope ``admin``)."""
    return PurgeOut(purged=await ops.purge(who, body.ids))
