"""Dead letters in bulk: everything a subject filter matches, for ``atp dlq --all`` and the
console. A count comes from the store's counters (no scan); acting walks the listing.

TaskService has no batch requeue, so tasks are requeued one by one; one that left DEAD
meanwhile, or whose record cannot be decoded, is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from atp.core import codec
from atp.core.errors import NotFound, StateConflict
from atp.core.model import JSON, State, TaskRecord
from atp.core.service import MAX_PAGE, TaskService
from atp.core.subjects import matches

__all__ = [
    "CORRUPT",
    "PURGE_BATCH",
    "Requeued",
    "count_dead",
    "dead",
    "purge_ids",
    "purge_matching",
    "requeue_each",
    "requeue_matching",
]

PURGE_BATCH = 500
"""Ids deleted per store call when purging many, so progress can be shown."""
CORRUPT = "cannot be decoded: purge it instead"

Advance = Callable[[int], None]
"""Told how many more items were handled (a progress bar)."""


def _unseen(count: int) -> None:
    """No progress to show."""


@dataclass
class Requeued:
    """What a requeue of many did: the records requeued, the ids skipped and why."""

    records: list[TaskRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


async def count_dead(service: TaskService, subject: str | None) -> int:
    """How many dead tasks the pattern ``subject`` matches (None: all), from counts()."""
    counts = await service.counts()
    return sum(
        n
        for (name, state), n in counts.items()
        if state is State.DEAD and (subject is None or matches(subject, name))
    )


async def dead(service: TaskService, subject: str | None) -> list[TaskRecord]:
    """Every dead task ``subject`` matches (all of them for None), walking all pages."""
    found: list[TaskRecord] = []
    cursor = None
    while True:
        page = await service.dead_letters(subject=subject, cursor=cursor, limit=MAX_PAGE)
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def requeue_each(
    service: TaskService,
    ids: Sequence[str],
    *,
    delay: float | None,
    payload: JSON = None,
    replace: bool = False,
    strict: bool = False,
    advance: Advance = _unseen,
) -> Requeued:
    """Requeue ``ids`` one by one. ``strict`` lets a failure raise; otherwise an id that is
    unknown or not dead is skipped with the reason. Bad input raises at the first id."""
    done = Requeued()
    for task_id in ids:
        try:
            record = await service.requeue(
                task_id, delay=delay, payload=payload, replace_payload=replace
            )
            done.records.append(record)
        except (NotFound, StateConflict) as exc:
            if strict:
                raise
            done.skipped.append((task_id, exc.message))
        advance(1)
    return done


async def requeue_matching(
    service: TaskService,
    subject: str | None,
    *,
    delay: float | None,
    payload: JSON = None,
    replace: bool = False,
    advance: Advance = _unseen,
) -> Requeued:
    """Requeue every dead task ``subject`` matches; one that cannot be decoded is skipped."""
    found = await dead(service, subject)
    corrupt = [(r.id, CORRUPT) for r in found if codec.is_quarantined(r)]
    decodable = [r.id for r in found if not codec.is_quarantined(r)]
    done = await requeue_each(
        service, decodable, delay=delay, payload=payload, replace=replace, advance=advance
    )
    return Requeued(done.records, corrupt + done.skipped)


async def purge_ids(service: TaskService, ids: Sequence[str], advance: Advance = _unseen) -> int:
    """Purge ``ids`` (those dead) in batches of ``PURGE_BATCH``; how many were purged."""
    purged = 0
    for start in range(0, len(ids), PURGE_BATCH):
        batch = ids[start : start + PURGE_BATCH]
        purged += await service.purge(batch)
        advance(len(batch))
    return purged


async def purge_matching(service: TaskService, subject: str | None) -> int:
    """Purge every dead task ``subject`` matches: without a subject in one store call
    (those that died since a count too), with one exactly those the listing holds now."""
    if subject is None:
        return await service.purge(None)
    return await purge_ids(service, [record.id for record in await dead(service, subject)])
