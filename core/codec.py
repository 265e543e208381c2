"""JSON encoding of tasks and records: the wire format every language reads. No pickle, ever.

Times are seconds since the Unix epoch as JSON numbers; absent optional fields are omitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from atp.core.errors import InvalidInput
from atp.core.model import AttemptError, RetryPolicy, State, Task, TaskRecord
from atp.core.subjects import validate_subject

__all__ = [
    "decode_record",
    "decode_task",
    "dumps",
    "encode_record",
    "encode_task",
    "error_to_dict",
    "loads",
    "record_from_dict",
    "record_to_dict",
    "retry_to_dict",
    "task_from_dict",
    "task_from_stored_dict",
    "task_to_dict",
]

_OPTIONAL = ("idempotency_key", "timeout", "schedule", "tick", "workflow_run", "step")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact JSON; raise InvalidInput if it is not JSON-serialisable."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise InvalidInput(f"value is not JSON-serialisable: {exc}") from exc


def loads(data: bytes | str) -> Any:
    """Decode JSON; raise InvalidInput for malformed input."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc


def task_to_dict(task: Task) -> dict[str, Any]:
    """Return the JSON object of ``task``."""
    data: dict[str, Any] = {
        "id": task.id,
        "subject": task.subject,
        "payload": task.payload,
        "headers": dict(task.headers),
        "run_at": task.run_at,
        "created_at": task.created_at,
        "attempt": task.attempt,
        "priority": task.priority,
    }
    if task.max_attempts is not None:
        data["max_attempts"] = task.max_attempts
    if task.retry is not None:
        data["retry"] = retry_to_dict(task.retry)
    for name in _OPTIONAL:
        value = getattr(task, name)
        if value is not None:
            data[name] = value
    return data


def task_from_dict(data: Mapping[str, Any]) -> Task:
    """Build a Task from its JSON object, checking every field; raise InvalidInput."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"a task envelope must be a JSON object, got {type(data).__name__}")
    try:
        return Task(
            id=_string(data, "id"),
            subject=validate_subject(data.get("subject")),
            payload=data.get("payload"),
            headers=_headers(data.get("headers") or {}),
            idempotency_key=_optional_string(data, "idempotency_key"),
            run_at=float(data.get("run_at", 0.0)),
            created_at=float(data.get("created_at", 0.0)),
            attempt=_integer(data.get("attempt", 0), "attempt"),
            max_attempts=_optional_int(data.get("max_attempts")),
            retry=_retry_from_dict(data["retry"]) if data.get("retry") else None,
            timeout=_optional_float(data.get("timeout")),
            priority=_integer(data.get("priority", 0), "priority"),
            schedule=_optional_string(data, "schedule"),
            tick=_optional_float(data.get("tick")),
            workflow_run=_optional_string(data, "workflow_run"),
            step=_optional_string(data, "step"),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed task envelope: {exc}") from exc


def task_from_stored_dict(data: Mapping[str, Any]) -> Task:
    """Build a Task from an object that ``task_to_dict`` wrote, without checking it.

    For stores reading back their own rows, where every envelope was checked on the way
    in: about twice as fast as ``task_from_dict``. Never use it on input from outside.
    """
    retry = data.get("retry")
    return Task(
        id=data["id"],
        subject=data["subject"],
        payload=data.get("payload"),
        headers=data.get("headers") or {},
        idempotency_key=data.get("idempotency_key"),
        run_at=data.get("run_at", 0.0),
        created_at=data.get("created_at", 0.0),
        attempt=data.get("attempt", 0),
        max_attempts=data.get("max_attempts"),
        retry=_retry_from_dict(retry) if retry else None,
        timeout=data.get("timeout"),
        priority=data.get("priority", 0),
        schedule=data.get("schedule"),
        tick=data.get("tick"),
        workflow_run=data.get("workflow_run"),
        step=data.get("step"),
    )


def encode_task(task: Task) -> bytes:
    """Return the JSON bytes of ``task``."""
    return dumps(task_to_dict(task))


def decode_task(data: bytes | str) -> Task:
    """Return the Task in ``data``; raise InvalidInput for anything malformed."""
    return task_from_dict(loads(data))


def record_to_dict(record: TaskRecord) -> dict[str, Any]:
    """Return the JSON object of ``record``: the task under ``task``, the rest beside it."""
    return {
        "task": task_to_dict(record.task),
        "state": record.state.value,
        "updated_at": record.updated_at,
        "lease_owner": record.lease_owner,
        "lease_until": record.lease_until,
        "result": record.result,
        "errors": [error_to_dict(error) for error in record.errors],
        "cancel_requested": record.cancel_requested,
        "finished_at": record.finished_at,
    }


def record_from_dict(data: Mapping[str, Any]) -> TaskRecord:
    """Build a TaskRecord from its JSON object; raise InvalidInput for anything malformed."""
    try:
        return _record(data)
    except InvalidInput:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed task record: {exc!r}") from exc


def _record(data: Mapping[str, Any]) -> TaskRecord:
    return TaskRecord(
        task=task_from_dict(data["task"]),
        state=State(data["state"]),
        updated_at=float(data["updated_at"]),
        lease_owner=data.get("lease_owner"),
        lease_until=_optional_float(data.get("lease_until")),
        result=data.get("result"),
        errors=tuple(AttemptError(**error) for error in data.get("errors") or ()),
        cancel_requested=bool(data.get("cancel_requested", False)),
        finished_at=_optional_float(data.get("finished_at")),
    )


def encode_record(record: TaskRecord) -> bytes:
    """Return the JSON bytes of ``record``."""
    return dumps(record_to_dict(record))


def decode_record(data: bytes | str) -> TaskRecord:
    """Return the TaskRecord in ``data``."""
    return record_from_dict(loads(data))


def error_to_dict(error: AttemptError) -> dict[str, Any]:
    """The JSON object of one attempt's error."""
    return {"attempt": error.attempt, "at": error.at, "message": error.message, "kind": error.kind}


def retry_to_dict(policy: RetryPolicy) -> dict[str, Any]:
    """The JSON object of a retry policy."""
    return {
        "base": policy.base,
        "factor": policy.factor,
        "cap": policy.cap,
        "jitter": policy.jitter,
    }


def _retry_from_dict(data: Mapping[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        base=float(data.get("base", 1.0)),
        factor=float(data.get("factor", 2.0)),
        cap=float(data.get("cap", 300.0)),
        jitter=bool(data.get("jitter", True)),
    )


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"task envelope: {key!r} must be a non-empty string, got {value!r}")
    return value


def _headers(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(f"headers must map strings to strings, got {value!r}")
    return dict(value)


def _optional_int(value: object) -> int | None:
    return None if value is None else _integer(value, "max_attempts")


def _integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidInput(f"task envelope: {key!r} must be an integer, got {value!r}")
    return int(value)


def _optional_string(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"task envelope: {key!r} must be a string, got {value!r}")
    return value


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
