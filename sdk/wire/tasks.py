"""Between protobuf messages and core types. JSON values travel as JSON text in bytes."""

from __future__ import annotations

from atp.core import codec
from atp.core.errors import InvalidInput
from atp.core.model import JSON, RetryPolicy, State, TaskRecord
from atp.core.ports import Page
from atp.core.service import Published, PublishRequest
from atp.sdk.wire.pb import tasks_pb2 as pb

__all__ = ["json_in", "json_out", "page_out", "published_out", "record_out", "request_in",
           "states_in"]  # fmt: skip


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
    retry = None
    if message.HasField("retry"):
        r = message.retry
        retry = RetryPolicy(base=r.base, factor=r.factor or 2.0, cap=r.cap or 300.0,
                            jitter=r.jitter)  # fmt: skip
    return PublishRequest(
        subject=message.subject,
        payload=json_in(message.payload, "payload"),
        delay=message.delay if message.HasField("delay") else None,
        run_at=message.run_at if message.HasField("run_at") else None,
        idempotency_key=_optional(message, "idempotency_key") or fallback_key,
        headers=dict(message.headers),
        max_attempts=message.max_attempts if message.HasField("max_attempts") else None,
        timeout=message.timeout if message.HasField("timeout") else None,
        priority=message.priority,
        retry=retry,
    )


def published_out(published: Published) -> pb.PublishResponse:
    return pb.PublishResponse(id=published.id, created=published.created, run_at=published.run_at)


def record_out(record: TaskRecord) -> pb.TaskRecord:
    task = record.task
    message = pb.TaskRecord(
        id=task.id, subject=task.subject, state=str(record.state),
        payload=json_out(task.payload), headers=dict(task.headers), run_at=task.run_at,
        created_at=task.created_at, updated_at=record.updated_at, attempt=task.attempt,
        priority=task.priority, result=json_out(record.result),
        cancel_requested=record.cancel_requested,
        errors=[pb.AttemptError(attempt=e.attempt, at=e.at, message=e.message, kind=e.kind)
                for e in record.errors],
    )  # fmt: skip
    optional = {"idempotency_key": task.idempotency_key, "max_attempts": task.max_attempts,
                "timeout": task.timeout, "lease_owner": record.lease_owner,
                "lease_until": record.lease_until, "finished_at": record.finished_at,
                "schedule": task.schedule, "workflow_run": task.workflow_run,
                "step": task.step}  # fmt: skip
    for name, value in optional.items():
        if value is not None:
            setattr(message, name, value)
    return message


def page_out(page: Page) -> pb.TaskPage:
    message = pb.TaskPage(items=[record_out(r) for r in page.items])
    if page.next_cursor is not None:
        message.next_cursor = page.next_cursor
    return message


def states_in(names: list[str]) -> list[State] | None:
    try:
        return [State(name.upper()) for name in names] or None
    except ValueError as exc:
        raise InvalidInput(f"unknown task state in {names!r}; states are "
                           f"{', '.join(State)}") from exc  # fmt: skip


def _optional(message: object, name: str) -> str | None:
    return getattr(message, name) if message.HasField(name) else None  # type: ignore[attr-defined]
