"""How a task lives in its Redis hash, and back: the envelope, payload, result and errors
are JSON strings Lua never decodes; times are decimal strings that round-trip exactly.

The stored envelope (field ``t``) leaves out what the hash holds in fields of its own (id,
subject, run_at, attempt, priority as the rank) and the payload (``p``), so a small task's
hash keeps every value under Redis's listpack limit (64 bytes) and stays compact. An
envelope stored whole by an earlier version reads the same: the fields overlay it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from atp.core.codec import (
    dumps,
    error_from_dict,
    error_to_dict,
    loads,
    task_from_stored_dict,
    task_to_dict,
)
from atp.core.errors import InvalidInput
from atp.core.model import AttemptError, State, Task, TaskRecord
from atp.core.ports import Outcome

__all__ = [
    "FIELD_COUNT",
    "HASH_FIELDS",
    "decode_record",
    "decode_task",
    "encode_error",
    "num",
    "pack_outcome",
    "pack_task",
    "rank",
]

FIELD_COUNT = 15
"""Values per record in a script's reply: the id, then the hash fields t p s u lo lu r e c f
a ra sub rk (``FIELDS`` in ``_common.lua``)."""
HASH_FIELDS = ("t", "p", "s", "u", "lo", "lu", "r", "e", "c", "f", "a", "ra", "sub", "rk")
_IN_FIELDS = ("id", "subject", "payload", "run_at", "attempt", "priority")
MAX_PRIORITY = 2**31 - 1
_OUTCOME_STATES = frozenset({State.SUCCEEDED, State.SCHEDULED, State.DEAD, State.CANCELLED})


@lru_cache(maxsize=256)
def num(value: float) -> str:
    """A time or number as the exact decimal string scripts store and compare.

    Kept for recent values: a batch's tasks share their times, and ``repr`` of a float
    costs more than the lookup (0.0 and -0.0 share an entry; Lua compares them equal).
    """
    return repr(float(value))


def rank(priority: int) -> str:
    """The due-index prefix that sorts higher priorities first among equal run_at."""
    return f"{MAX_PRIORITY - priority:010d}"


def pack_task(task: Task) -> bytes:
    """The one ``create.lua`` argument of a task: its fields joined by newlines, the
    idempotency key last. InvalidInput if the payload is not JSON or the id is unusable."""
    if not task.id or " " in task.id or "\n" in task.id:
        raise InvalidInput(f"task id {task.id!r} must be non-empty, without spaces or newlines")
    envelope = task_to_dict(task)
    payload = dumps(envelope["payload"])
    for name in _IN_FIELDS:
        del envelope[name]
    if not envelope["headers"]:
        del envelope["headers"]
    maxa = "" if task.max_attempts is None else task.max_attempts
    # The key goes last, so it may hold anything (the script splits off 8 fields).
    head = (
        f"{task.id}\n{task.subject}\n{rank(task.priority)}\n{num(task.run_at)}\n"
        f"{task.attempt}\n{maxa}\n"
    )
    tail = f"\n{task.idempotency_key}" if task.idempotency_key else "\n"
    return b"".join((head.encode(), dumps(envelope), b"\n", payload, tail.encode()))


def pack_outcome(outcome: Outcome) -> bytes:
    """The one ``finish.lua`` argument of an outcome; InvalidInput for a bad state or a
    result that is not JSON."""
    if outcome.state not in _OUTCOME_STATES:
        raise InvalidInput(f"task {outcome.task_id}: cannot finish as {outcome.state}")
    if "\n" in outcome.owner:
        raise InvalidInput(f"lease owner {outcome.owner!r} must not hold a newline")
    result = dumps(outcome.result) if outcome.state is State.SUCCEEDED else b""
    error = encode_error(outcome.error) if outcome.error is not None else b""
    run_at = "" if outcome.run_at is None else num(outcome.run_at)
    head = f"{outcome.task_id}\n{outcome.owner}\n{outcome.state.value}\n{num(outcome.at)}\n"
    head += f"{run_at}\n{'1' if outcome.refund else '0'}\n"
    return b"".join((head.encode(), error, b"\n", result))


def encode_error(error: AttemptError) -> bytes:
    return dumps(error_to_dict(error))


def decode_task(
    task_id: bytes | str,
    envelope: bytes,
    payload: bytes,
    attempt: bytes,
    run_at: bytes,
    subject: bytes,
    rank_: bytes,
) -> Task:
    """The Task stored as these fields (the store's own writing: not checked again)."""
    data = loads(envelope)
    data["id"] = task_id.decode() if isinstance(task_id, bytes) else task_id
    data["subject"] = subject.decode()
    data["priority"] = MAX_PRIORITY - int(rank_)
    data["payload"] = loads(payload)
    data["attempt"] = int(attempt)
    data["run_at"] = float(run_at)
    return task_from_stored_dict(data)


def decode_record(fields: Sequence[Any]) -> TaskRecord:
    """The TaskRecord of one script reply's ``FIELD_COUNT`` values."""
    i, t, p, s, u, lo, lu, r, e, c, f, a, ra, sub, rk = fields
    return TaskRecord(
        task=decode_task(i, t, p, a, ra, sub, rk),
        state=State(s.decode()),
        updated_at=float(u),
        lease_owner=lo.decode() if lo is not None else None,
        lease_until=float(lu) if lu is not None else None,
        result=loads(r) if r is not None else None,
        errors=tuple(error_from_dict(item) for item in loads(e)) if e and e != b"[]" else (),
        cancel_requested=c is not None,
        finished_at=float(f) if f is not None else None,
    )
