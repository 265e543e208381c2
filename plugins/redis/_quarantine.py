"""Stored records that cannot be decoded: handed out as DEAD stand-ins and made DEAD in
Redis, their fields left as they are, so one damaged hash stops nothing else (ADR 0027).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from atp.core.codec import DECODE_ERRORS, is_quarantined, quarantined
from atp.core.model import Task, TaskRecord
from atp.plugins.redis._connection import Link, Scripts
from atp.plugins.redis._records import decode_record, decode_task, num
from atp.plugins.redis.keys import StoreKeys

__all__ = ["quarantine", "record_of", "tasks_of", "to_quarantine"]

log = logging.getLogger("atp.plugins.redis")


def record_of(fields: Sequence[Any]) -> TaskRecord:
    """The record of one script reply's ``FIELD_COUNT`` values; the ``quarantined``
    stand-in where they cannot be decoded."""
    try:
        return decode_record(fields)
    except DECODE_ERRORS as exc:
        return quarantined(_text(fields[0]), _text(fields[13]), exc, at=_time(fields[4]))


def tasks_of(reply: Sequence[Any]) -> tuple[list[Task], dict[str, str]]:
    """The tasks of a ``take_due`` or ``redispatch`` reply (7 values each), and why each
    of those that cannot be decoded cannot, by id."""
    tasks, corrupt = [], {}
    for i in range(0, len(reply), 7):
        try:
            tasks.append(decode_task(*reply[i : i + 7]))
        except DECODE_ERRORS as exc:
            corrupt[_text(reply[i])] = repr(exc)
    return tasks, corrupt


def to_quarantine(records: Sequence[TaskRecord | None]) -> dict[str, str]:
    """Why each ``quarantined`` stand-in among ``records`` is one, by id."""
    return {r.id: r.errors[-1].message for r in records if r is not None and is_quarantined(r)}


async def quarantine(link: Link, keys: StoreKeys, corrupt: Mapping[str, str], now: float) -> None:
    """Make DEAD the tasks ``corrupt`` names (``quarantine.lua``), logging why for each one
    it changed: once per task, since a DEAD task is not taken again."""
    if not corrupt:
        return
    ids = list(corrupt)
    task_keys = [keys.task(task_id) for task_id in ids]
    async with link.guard("quarantine"):
        changed = await Scripts.run(
            link, "quarantine", [*keys.indexes(), *task_keys], [num(now), *ids]
        )
    for task_id in map(_text, changed):
        log.error("task %s cannot be decoded, quarantined as DEAD: %s", task_id, corrupt[task_id])


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _time(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
