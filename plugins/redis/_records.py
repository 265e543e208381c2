"""How a task lives in its Redis hash, and back: the envelope, payload, result and errors
are JSON strings Lua never decodes; times are decimal strings that round-trip exactly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atp.core.codec import dumps, loads, task_from_stored_dict, task_to_dict
from atp.core.errors import InvalidInput
from atp.core.model import AttemptError, State, Task, TaskRecord

__all__ = ["FIELD_COUNT", "decode_record", "decode_task", "encode_error", "num", "pack_task",
           "rank"]  # fmt: skip

FIELD_COUNT = 12
"""Fields per record in a script's reply: t p s u lo lu r e c f a ra (``_common.lua``)."""
MAX_PRIORITY = 2**31 - 1


def num(value: float) -> str:
    """A time or number as the exact decimal string scripts store and compare."""
    return repr(float(value))


def rank(priority: int) -> str:
    """The due-index prefix that sorts higher priorities first among equal run_at."""
    return f"{MAX_PRIORITY - priority:010d}"


def pack_task(task: Task) -> bytes:
    """The one ``create.lua`` argument of a task: its fields joined by newlines, the
    idempotency key last. InvalidInput if the payload is not JSON or the id is unusable."""
    if not task.id or any(c in task.id for c in " \n"):
        raise InvalidInput(f"task id {task.id!r} must be non-empty, without spaces or newlines")
    envelope = task_to_dict(task)
    payload = dumps(envelope.pop("payload"))
    maxa = "" if task.max_attempts is None else str(task.max_attempts)
    head = f"{task.id}\n{task.subject}\n{rank(task.priority)}\n{num(task.run_at)}\n"
    head += f"{task.attempt}\n{maxa}\n"
    key = (task.idempotency_key or "").encode()
    return b"".join((head.encode(), dumps(envelope), b"\n", payload, b"\n", key))


def encode_error(error: AttemptError) -> bytes:
    return dumps(
        {"attempt": error.attempt, "at": error.at, "message": error.message, "kind": error.kind}
    )


def decode_task(envelope: bytes, payload: bytes, attempt: bytes, run_at: bytes) -> Task:
    """The Task stored as these fields (the store's own writing: not checked again)."""
    data = loads(envelope)
    data["payload"] = loads(payload)
    data["attempt"] = int(attempt)
    data["run_at"] = float(run_at)
    return task_from_stored_dict(data)


def decode_record(fields: Sequence[Any]) -> TaskRecord:
    """The TaskRecord of one script reply's ``FIELD_COUNT`` fields."""
    t, p, s, u, lo, lu, r, e, c, f, a, ra = fields
    return TaskRecord(
        task=decode_task(t, p, a, ra),
        state=State(s.decode()),
        updated_at=float(u),
        lease_owner=lo.decode() if lo is not None else None,
        lease_until=float(lu) if lu is not None else None,
        result=loads(r) if r is not None else None,
        errors=tuple(AttemptError(**item) for item in loads(e)) if e and e != b"[]" else (),
        cancel_requested=c is not None,
        finished_at=float(f) if f is not None else None,
    )
