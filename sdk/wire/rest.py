"""Between the REST API's JSON bodies and core types, both ways.

The server (``atp.adapters.http``) validates a body with its pydantic model, then reads it
with ``*_in`` and answers with ``*_out``; the SDK's REST client does the opposite. One
module for both ends, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atp.core import codec
from atp.core.flow.rules import Limit, limit_from_dict, limit_to_dict, parse_rate
from atp.core.flow.service import FlowStatus
from atp.core.model import RetryPolicy, State, Task, TaskRecord
from atp.core.ports import Page
from atp.core.service import Published, PublishRequest
from atp.sdk._options import PublishOptions, dedup_options, publish_request

__all__ = [
    "limit_in",
    "limit_out",
    "page_in",
    "published_in",
    "published_out",
    "record_in",
    "record_out",
    "request_in",
    "request_out",
    "status_in",
    "status_out",
]

_REQUEST_OPTIONAL = (
    "delay",
    "run_at",
    "idempotency_key",
    "max_attempts",
    "timeout",
    "concurrency_key",
    "rate_key",
    "group_key",
)


def request_in(body: Mapping[str, Any], fallback_key: str | None) -> PublishRequest:
    """The core request of a validated publish body; ``fallback_key`` if it has no key.

    Raises InvalidInput for a malformed duration or dedup.
    """
    retry = body.get("retry")
    dedup = body.get("dedup")
    options: PublishOptions = {
        "delay": body.get("delay"),
        "run_at": body.get("run_at"),
        "idempotency_key": body.get("idempotency_key") or fallback_key,
        "headers": body.get("headers"),
        "max_attempts": body.get("max_attempts"),
        "timeout": body.get("timeout"),
        "priority": body.get("priority", 0),
        "retry": None if retry is None else RetryPolicy(**retry),
        "concurrency_key": body.get("concurrency_key"),
        "rate_key": body.get("rate_key"),
        "group_key": body.get("group_key"),
    }
    if dedup is not None:
        options.update(dedup_options(codec.dedup_from_dict(dedup)))
    return publish_request(body["subject"], body.get("payload"), **options)


def request_out(request: PublishRequest) -> dict[str, Any]:
    """The publish body of ``request``; options left at their defaults are left out."""
    body: dict[str, Any] = {
        "subject": request.subject,
        "payload": request.payload,
        "headers": dict(request.headers),
        "priority": request.priority,
    }
    for name in _REQUEST_OPTIONAL:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.retry is not None:
        body["retry"] = codec.retry_to_dict(request.retry)
    if request.dedup is not None:
        body["dedup"] = codec.dedup_to_dict(request.dedup)
    return body


def published_in(body: Mapping[str, Any]) -> Published:
    return Published(body["id"], body["created"], body["run_at"], body.get("replaced"))


def published_out(published: Published) -> dict[str, Any]:
    return {
        "id": published.id,
        "created": published.created,
        "run_at": published.run_at,
        "replaced": published.replaced,
    }


def record_in(body: Mapping[str, Any]) -> TaskRecord:
    """The TaskRecord of a task body (the flat form ``record_out`` writes)."""
    task = Task(
        id=body["id"],
        subject=body["subject"],
        payload=body.get("payload"),
        headers=dict(body.get("headers") or {}),
        idempotency_key=body.get("idempotency_key"),
        run_at=body["run_at"],
        created_at=body["created_at"],
        attempt=body["attempt"],
        max_attempts=body.get("max_attempts"),
        timeout=body.get("timeout"),
        priority=body.get("priority", 0),
        schedule=body.get("schedule"),
        workflow_run=body.get("workflow_run"),
        step=body.get("step"),
        concurrency_key=body.get("concurrency_key"),
        rate_key=body.get("rate_key"),
        group_key=body.get("group_key"),
        dedup=codec.dedup_from_dict(dedup) if (dedup := body.get("dedup")) else None,
    )
    errors = tuple(codec.error_from_dict(e) for e in body.get("errors", []))
    return TaskRecord(
        task=task,
        state=State(body["state"]),
        updated_at=body["updated_at"],
        lease_owner=body.get("lease_owner"),
        lease_until=body.get("lease_until"),
        result=body.get("result"),
        errors=errors,
        cancel_requested=body.get("cancel_requested", False),
        finished_at=body.get("finished_at"),
    )


def record_out(record: TaskRecord) -> dict[str, Any]:
    """The task body of ``record``: the envelope and the record's fields side by side."""
    task = record.task
    return {
        "id": task.id,
        "subject": task.subject,
        "state": str(record.state),
        "payload": task.payload,
        "headers": dict(task.headers),
        "idempotency_key": task.idempotency_key,
        "run_at": task.run_at,
        "created_at": task.created_at,
        "updated_at": record.updated_at,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "timeout": task.timeout,
        "priority": task.priority,
        "lease_owner": record.lease_owner,
        "lease_until": record.lease_until,
        "result": record.result,
        "errors": [codec.error_to_dict(e) for e in record.errors],
        "cancel_requested": record.cancel_requested,
        "finished_at": record.finished_at,
        "schedule": task.schedule,
        "workflow_run": task.workflow_run,
        "step": task.step,
        "concurrency_key": task.concurrency_key,
        "rate_key": task.rate_key,
        "group_key": task.group_key,
        "dedup": None if task.dedup is None else codec.dedup_to_dict(task.dedup),
    }


def page_in(body: Mapping[str, Any]) -> Page:
    return Page([record_in(item) for item in body["items"]], body.get("next_cursor"))


def limit_in(body: Mapping[str, Any]) -> Limit:
    """The Limit of a limit body, whose rate and window may be texts such as ``10/s``.

    Raises InvalidInput for a malformed rule.
    """
    data = dict(body)
    for name in ("rate", "window"):
        if isinstance(data.get(name), str):
            rate = parse_rate(data[name], name)
            data[name] = {"count": rate.count, "per": rate.per}
    data.pop("name", None)  # the answers carry it; it is derived
    return limit_from_dict(data)


def limit_out(limit: Limit) -> dict[str, Any]:
    return {**limit_to_dict(limit), "name": limit.name}


def status_in(body: Mapping[str, Any]) -> FlowStatus:
    return FlowStatus(
        limits=tuple(limit_in(item) for item in body["limits"]),
        pauses=tuple(body["pauses"]),
        waiting={str(name): int(count) for name, count in body["waiting"].items()},
        version=int(body["version"]),
    )


def status_out(status: FlowStatus) -> dict[str, Any]:
    return {
        "limits": [limit_out(limit) for limit in status.limits],
        "pauses": list(status.pauses),
        "waiting": dict(status.waiting),
        "version": status.version,
    }
