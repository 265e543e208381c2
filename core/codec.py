"""JSON encoding of tasks and records: the wire format every language reads. No pickle, ever.

Times are seconds since the Unix epoch as JSON numbers; absent optional fields are omitted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from atp.core.errors import InvalidInput
from atp.core.model import AttemptError, Dedup, RetryPolicy, State, Task, TaskRecord
from atp.core.quoting import quote
from atp.core.subjects import validate_subject

__all__ = [
    "CORRUPT",
    "DECODE_ERRORS",
    "decode_record",
    "decode_task",
    "dedup_from_dict",
    "dedup_to_dict",
    "dumps",
    "encode_record",
    "encode_task",
    "error_from_dict",
    "error_to_dict",
    "is_quarantined",
    "loads",
    "quarantined",
    "record_from_dict",
    "record_to_dict",
    "retry_to_dict",
    "task_from_dict",
    "task_from_stored_dict",
    "task_to_dict",
]

_OPTIONAL = (
    "idempotency_key",
    "timeout",
    "schedule",
    "tick",
    "workflow_run",
    "step",
    "concurrency_key",
    "rate_key",
    "group_key",
)


CORRUPT = "corrupt"
"""The ``AttemptError.kind`` of a stored record that cannot be decoded (ADR 0027)."""

DECODE_ERRORS = (InvalidInput, KeyError, IndexError, TypeError, ValueError, AttributeError)
"""What decoding a damaged stored record raises: a store quarantines the record on these."""


def dumps(value: Any, what: str = "value") -> bytes:
    """Encode ``value`` as compact JSON; raise InvalidInput, naming ``what``, if it is not
    JSON-serialisable or holds NaN or an infinity (JSON has neither)."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from exc
    if value is not None and b"null" in data:  # orjson writes NaN and infinities as null
        where = _non_finite(value)
        if where is not None:
            path = "$" + "".join(reversed(where))
            raise InvalidInput(f"{what} holds a non-finite number (NaN or infinity) at {path}")
    return data


def _non_finite(value: Any) -> list[str] | None:
    """The path to the first NaN or infinity in ``value``, innermost step first; None if
    it holds none. Exact type checks first: this runs on every publish and result."""
    items: Iterable[tuple[Any, Any]]
    step: Callable[[Any], str]
    kind = type(value)
    if kind is dict:
        items, step = value.items(), _key_step
    elif kind is list or kind is tuple:
        items, step = enumerate(value), _index_step
    elif isinstance(value, float):
        return None if math.isfinite(value) else []
    elif isinstance(value, Mapping):
        items, step = value.items(), _key_step
    elif isinstance(value, list | tuple):
        items, step = enumerate(value), _index_step
    else:
        return None
    for key, item in items:
        kind = type(item)
        if kind in _SCALARS or (kind is float and math.isfinite(item)):
            continue
        found = _non_finite(item)
        if found is not None:
            found.append(step(key))
            return found
    return None


_SCALARS = frozenset({str, int, bool, type(None)})


def _key_step(key: object) -> str:
    if isinstance(key, str) and key.isidentifier() and len(key) <= 40:
        return f".{key}"
    return f"[{quote(key)}]"


def _index_step(index: object) -> str:
    return f"[{index}]"


def loads(data: bytes | str) -> Any:
    """Decode JSON; raise InvalidInput for malformed input."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {quote(str(exc))}") from exc


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
    if task.dedup is not None:
        data["dedup"] = dedup_to_dict(task.dedup)
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
            concurrency_key=_optional_string(data, "concurrency_key"),
            rate_key=_optional_string(data, "rate_key"),
            group_key=_optional_string(data, "group_key"),
            dedup=dedup_from_dict(data["dedup"]) if data.get("dedup") else None,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed task envelope: {quote(str(exc))}") from exc


def task_from_stored_dict(data: Mapping[str, Any]) -> Task:
    """Build a Task from an object that ``task_to_dict`` wrote, without checking it.

    For stores reading back their own rows, where every envelope was checked on the way
    in: about twice as fast as ``task_from_dict``. Never use it on input from outside.
    """
    retry, headers = data.get("retry"), data.get("headers") or {}
    if type(headers) is not dict:  # what reads it later (the transport's encoding) would fail
        raise TypeError(f"headers must be an object, got {quote(headers)}")
    return Task(
        id=data["id"],
        subject=data["subject"],
        payload=data.get("payload"),
        headers=headers,
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
        concurrency_key=data.get("concurrency_key"),
        rate_key=data.get("rate_key"),
        group_key=data.get("group_key"),
        dedup=dedup_from_dict(dedup) if (dedup := data.get("dedup")) else None,
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
        raise InvalidInput(f"malformed task record: {quote(exc)}") from exc


def _record(data: Mapping[str, Any]) -> TaskRecord:
    return TaskRecord(
        task=task_from_dict(data["task"]),
        state=State(data["state"]),
        updated_at=float(data["updated_at"]),
        lease_owner=data.get("lease_owner"),
        lease_until=_optional_float(data.get("lease_until")),
        result=data.get("result"),
        errors=tuple(error_from_dict(error) for error in data.get("errors") or ()),
        cancel_requested=bool(data.get("cancel_requested", False)),
        finished_at=_optional_float(data.get("finished_at")),
    )


def encode_record(record: TaskRecord) -> bytes:
    """Return the JSON bytes of ``record``."""
    return dumps(record_to_dict(record))


def decode_record(data: bytes | str) -> TaskRecord:
    """Return the TaskRecord in ``data``."""
    return record_from_dict(loads(data))


def quarantined(task_id: str, subject: object, error: BaseException, *, at: float) -> TaskRecord:
    """What a store hands out for a stored record it cannot decode (``error`` said why):
    DEAD, its last error of kind ``CORRUPT`` giving the reason, the raw data left alone
    in the store. Nothing can run it, so it stops nothing else; it stays to be seen and
    purged (ADR 0027)."""
    reason = f"the stored record cannot be decoded: {type(error).__name__}: {quote(str(error))}"
    name = subject if isinstance(subject, str) and subject else "corrupt"
    return TaskRecord(
        task=Task(id=task_id, subject=name),
        state=State.DEAD,
        updated_at=at,
        errors=(AttemptError(attempt=0, at=at, message=reason, kind=CORRUPT),),
        finished_at=at,
    )


def is_quarantined(record: TaskRecord) -> bool:
    """Whether ``record`` is the stand-in ``quarantined`` made for an undecodable one."""
    last = record.last_error
    return record.state is State.DEAD and last is not None and last.kind == CORRUPT


def error_to_dict(error: AttemptError) -> dict[str, Any]:
    """The JSON object of one attempt's error; ``traceback``, ``worker`` and
    ``started_at`` only where there is one, so the common error stays small and a record
    written before them reads the same."""
    data: dict[str, Any] = {
        "attempt": error.attempt,
        "at": error.at,
        "message": error.message,
        "kind": error.kind,
    }
    if error.traceback is not None:
        data["traceback"] = error.traceback
    if error.worker is not None:
        data["worker"] = error.worker
    if error.started_at is not None:
        data["started_at"] = error.started_at
    return data


def error_from_dict(data: dict[str, Any]) -> AttemptError:
    """The AttemptError of one stored or wire JSON object (``traceback``, ``worker`` and
    ``started_at`` optional)."""
    return AttemptError(
        attempt=data["attempt"],
        at=data["at"],
        message=data["message"],
        kind=data.get("kind", "error"),
        traceback=data.get("traceback"),
        worker=data.get("worker"),
        started_at=data.get("started_at"),
    )


def retry_to_dict(policy: RetryPolicy) -> dict[str, Any]:
    """The JSON object of a retry policy."""
    return {
        "base": policy.base,
        "factor": policy.factor,
        "cap": policy.cap,
        "jitter": policy.jitter,
    }


def dedup_to_dict(dedup: Dedup) -> dict[str, Any]:
    """Return the JSON object of a dedup mode: ``{"mode": ..., "period": ...}``."""
    data: dict[str, Any] = {"mode": dedup.mode.value}
    if dedup.period is not None:
        data["period"] = dedup.period
    return data


def dedup_from_dict(data: object) -> Dedup:
    """Build a Dedup from its JSON object; raise InvalidInput."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"dedup must be an object with mode and period, got {quote(data)}")
    unknown = set(data) - {"mode", "period"}
    if unknown:
        raise InvalidInput(f"dedup has unknown fields: {', '.join(sorted(map(str, unknown)))}")
    return Dedup(data.get("mode"), data.get("period"))  # type: ignore[arg-type]


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
        raise InvalidInput(f"task envelope: {key!r} must be a non-empty string, got {quote(value)}")
    return value


def _headers(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(f"headers must map strings to strings, got {quote(value)}")
    return dict(value)


def _optional_int(value: object) -> int | None:
    return None if value is None else _integer(value, "max_attempts")


def _integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidInput(f"task envelope: {key!r} must be an integer, got {quote(value)}")
    return int(value)


def _optional_string(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"task envelope: {key!r} must be a string, got {quote(value)}")
    return value


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
