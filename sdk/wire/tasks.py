"""Between protobuf messages and core types, both ways (the server's gRPC adapter sends
``*_out`` and reads ``*_in``; the SDK's gRPC client does the opposite). JSON values travel
as JSON text in bytes."""

from __future__ import annotations

import dataclasses
from typing import Any

from atp.core import codec
from atp.core.errors import InvalidInput
from atp.core.model import JSON, AttemptError, Dedup, RetryPolicy, State, Task, TaskRecord
from atp.core.ports import Page
from atp.core.service import Published, PublishRequest
from atp.sdk._options import publish_request
from atp.sdk.wire.pb import tasks_pb2 as pb

__all__ = [
    "dedup_in",
    "dedup_out",
    "field_or_none",
    "id_in",
    "json_in",
    "json_out",
    "page_in",
    "page_out",
    "published_in",
    "published_out",
    "record_in",
    "record_out",
    "request_in",
    "request_out",
    "set_optional",
    "states_in",
]

MAX_ID = 255
"""The longest id or name a request may give: atp's task ids have 26 characters
(``core.ids``), schedule and workflow names at most 128; a run id a caller chooses gets
room to spare."""
_TASK_OPTIONAL = (
    "idempotency_key",
    "max_attempts",
    "timeout",
    "schedule",
    "workflow_run",
    "step",
    "concurrency_key",
    "rate_key",
    "group_key",
)
_FLOW_KEYS = ("concurrency_key", "rate_key", "group_key")
_RECORD_OPTIONAL = ("lease_owner", "lease_until", "finished_at")


def field_or_none(message: Any, name: str) -> Any:
    """The value of an ``optional`` field, or None where it is not set."""
    return getattr(message, name) if message.HasField(name) else None


def set_optional(message: Any, source: object, names: tuple[str, ...]) -> None:
    """Copy the ``names`` attributes of ``source`` that are not None onto ``message``."""
    for name in names:
        value = getattr(source, name)
        if value is not None:
            setattr(message, name, value)


def id_in(value: str, what: str = "id") -> str:
    """``value`` if it may be an id or name; InvalidInput, without quoting it, if it is
    too long (a lookup would only answer NotFound)."""
    if len(value) > MAX_ID:
        raise InvalidInput(f"{what} has {len(value)} characters; at most {MAX_ID} are allowed")
    return value


def json_in(data: bytes, what: str) -> JSON:
    """Decode JSON text (empty: null); InvalidInput names the field."""
    if not data:
        return None
    try:
        return codec.loads(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.message}") from exc


def json_out(value: JSON) -> bytes:
    return b"" if value is None else codec.dumps(value)


def request_in(message: pb.PublishRequest, fallback_key: str | None) -> PublishRequest:
    """The core request of a publish message; ``fallback_key`` if it names no key."""
    retry = None
    if message.HasField("retry"):
        r = message.retry
        retry = RetryPolicy(
            base=r.base, factor=r.factor or 2.0, cap=r.cap or 300.0, jitter=r.jitter
        )
    request = publish_request(
        message.subject,
        json_in(message.payload, "payload"),
        delay=field_or_none(message, "delay"),
        run_at=field_or_none(message, "run_at"),
        idempotency_key=field_or_none(message, "idempotency_key") or fallback_key,
        headers=message.headers,
        max_attempts=field_or_none(message, "max_attempts"),
        timeout=field_or_none(message, "timeout"),
        priority=message.priority,
        retry=retry,
        concurrency_key=field_or_none(message, "concurrency_key"),
        rate_key=field_or_none(message, "rate_key"),
        group_key=field_or_none(message, "group_key"),
    )
    if not message.HasField("dedup"):
        return request
    return dataclasses.replace(request, dedup=dedup_in(message.dedup))  # a message, not options


def request_out(request: PublishRequest) -> pb.PublishRequest:
    message = pb.PublishRequest(
        subject=request.subject,
        payload=json_out(request.payload),
        delay=request.delay,
        run_at=request.run_at,
        idempotency_key=request.idempotency_key,
        headers=dict(request.headers),
        max_attempts=request.max_attempts,
        timeout=request.timeout,
        priority=request.priority,
    )
    if request.retry is not None:
        r = request.retry
        message.retry.CopyFrom(
            pb.RetryPolicy(base=r.base, factor=r.factor, cap=r.cap, jitter=r.jitter)
        )
    set_optional(message, request, _FLOW_KEYS)
    if request.dedup is not None:
        message.dedup.CopyFrom(dedup_out(request.dedup))
    return message


def dedup_in(message: pb.Dedup) -> Dedup:
    """The Dedup of a message; InvalidInput for an unknown mode or a bad period."""
    return Dedup(message.mode, field_or_none(message, "period"))  # type: ignore[arg-type]


def dedup_out(dedup: Dedup) -> pb.Dedup:
    return pb.Dedup(mode=dedup.mode.value, period=dedup.period)


def published_in(message: pb.PublishResponse) -> Published:
    replaced = field_or_none(message, "replaced")
    return Published(message.id, message.created, message.run_at, replaced)


def published_out(published: Published) -> pb.PublishResponse:
    return pb.PublishResponse(
        id=published.id,
        created=published.created,
        run_at=published.run_at,
        replaced=published.replaced,
    )


def record_in(message: pb.TaskRecord) -> TaskRecord:
    task = Task(
        id=message.id,
        subject=message.subject,
        payload=json_in(message.payload, "payload"),
        headers=dict(message.headers),
        run_at=message.run_at,
        created_at=message.created_at,
        attempt=message.attempt,
        priority=message.priority,
        dedup=dedup_in(message.dedup) if message.HasField("dedup") else None,
        **{name: field_or_none(message, name) for name in _TASK_OPTIONAL},
    )
    return TaskRecord(
        task=task,
        state=State(message.state),
        updated_at=message.updated_at,
        result=json_in(message.result, "result"),
        errors=tuple(error_in(e) for e in message.errors),
        cancel_requested=message.cancel_requested,
        **{name: field_or_none(message, name) for name in _RECORD_OPTIONAL},
    )


def record_out(record: TaskRecord) -> pb.TaskRecord:
    task = record.task
    message = pb.TaskRecord(
        id=task.id,
        subject=task.subject,
        state=str(record.state),
        payload=json_out(task.payload),
        headers=dict(task.headers),
        run_at=task.run_at,
        created_at=task.created_at,
        updated_at=record.updated_at,
        attempt=task.attempt,
        priority=task.priority,
        result=json_out(record.result),
        cancel_requested=record.cancel_requested,
        errors=[error_out(e) for e in record.errors],
    )
    set_optional(message, task, _TASK_OPTIONAL)
    set_optional(message, record, _RECORD_OPTIONAL)
    if task.dedup is not None:
        message.dedup.CopyFrom(dedup_out(task.dedup))
    return message


_ERROR_OPTIONAL = ("traceback", "worker", "started_at")


def error_in(message: pb.AttemptError) -> AttemptError:
    traceback, worker, started_at = (field_or_none(message, n) for n in _ERROR_OPTIONAL)
    return AttemptError(
        message.attempt, message.at, message.message, message.kind, traceback, worker, started_at
    )


def error_out(error: AttemptError) -> pb.AttemptError:
    message = pb.AttemptError(
        attempt=error.attempt, at=error.at, message=error.message, kind=error.kind
    )
    set_optional(message, error, _ERROR_OPTIONAL)
    return message


def page_in(message: pb.TaskPage) -> Page:
    return Page([record_in(item) for item in message.items], field_or_none(message, "next_cursor"))


def page_out(page: Page) -> pb.TaskPage:
    message = pb.TaskPage(items=[record_out(r) for r in page.items])
    if page.next_cursor is not None:
        message.next_cursor = page.next_cursor
    return message


def states_in(names: list[str]) -> list[State] | None:
    try:
        return [State(name.upper()) for name in names] or None
    except ValueError as exc:
        raise InvalidInput(
            f"unknown task state in {names!r}; states are {', '.join(State)}"
        ) from exc
