"""ScheduleStore and WorkflowStore written once, over four record primitives.

Schedules, workflow definitions and workflow runs are all named records with a revision
and, for two of them, a due time. ``RecordStore`` implements every ScheduleStore and
WorkflowStore method over what a backend writes: ``read_records``,
``scan_records``, ``due_records`` and ``change_records``, the last one a read, a pure
decision and a write in one atomic step. The decisions (revision checks, what a stored
copy looks like) are made here, so every backend makes the same ones.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Generic, TypeVar

from atp.core.codec import dumps, loads
from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.ports import Fence
from atp.core.schedules import (
    Advance,
    Schedule,
    advanced,
    name_taken,
    revision_changed,
    schedule_from_dict,
    schedule_to_dict,
    stored_copy,
)
from atp.core.workflows.definition import Definition, definition_from_dict, definition_to_dict
from atp.core.workflows.runs import (
    Run,
    RunPage,
    RunQuery,
    run_from_dict,
    run_to_dict,
)

__all__ = [
    "Change",
    "Decide",
    "Record",
    "RecordStore",
    "Scan",
    "Table",
    "changed_definition",
    "definition_key",
    "definition_version",
]

T = TypeVar("T")


class Table(StrEnum):
    """The three kinds of record; a backend keeps each apart."""

    SCHEDULES = "schedules"
    """Key: the schedule name. Due: ``next_tick`` unless paused."""
    DEFINITIONS = "workflow_definitions"
    """Key: ``definition_key(name, version)``; group: the name. Never due, never changed."""
    RUNS = "workflow_runs"
    """Key: the run id; group: the workflow; state: the run state. Due: ``wake_at`` while
    the run is active."""


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record: its JSON ``body`` and the fields a backend indexes."""

    key: str
    body: bytes
    revision: int = 1
    due: float | None = None
    """When the record is due; None when it never is (paused, finished)."""
    group: str = ""
    state: str = ""
    created_at: float = 0.0
    """When a definition was stored (a backend may keep it beside the body)."""


@dataclass(frozen=True, slots=True)
class Scan:
    """Which records ``scan_records`` returns, by key, ascending unless ``newest_first``."""

    group: str | None = None
    states: frozenset[str] | None = None
    """None: any state; an empty set matches nothing."""
    before: str | None = None
    """Only keys below this one."""
    limit: int | None = None
    newest_first: bool = False

    def matches(self, record: Record) -> bool:
        """Whether ``record`` passes the filter (ordering and limit aside)."""
        if self.group is not None and record.group != self.group:
            return False
        if self.states is not None and record.state not in self.states:
            return False
        return self.before is None or record.key < self.before

    def select(self, records: Iterable[Record]) -> list[Record]:
        """Filter, order and cut ``records``: the whole scan, for a backend that has them."""
        found = sorted((r for r in records if self.matches(r)), key=_key)
        if self.newest_first:
            found.reverse()
        return found if self.limit is None else found[: self.limit]


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """What a decision writes, and what the call returns."""

    result: T
    writes: Sequence[Record] = ()
    """Records to store, replacing any of the same key."""
    deletes: Sequence[str] = ()
    """Keys to delete."""


Decide = Callable[[Mapping[str, Record]], Change[T]]


class RecordStore(abc.ABC):
    """Every ScheduleStore and WorkflowStore method, over four primitives.

    A store subclasses this and writes the four abstract methods; mypy refuses to build
    one that misses any. Each primitive works on one ``Table``.
    """

    # -- the primitives a backend writes ---------------------------------------------------

    @abc.abstractmethod
    async def read_records(self, table: Table, keys: Sequence[str]) -> dict[str, Record]:
        """Return the stored record of each key that has one, from one snapshot."""

    @abc.abstractmethod
    async def scan_records(self, table: Table, scan: Scan) -> list[Record]:
        """Return the records ``scan`` selects (``Scan.select`` says exactly which)."""

    @abc.abstractmethod
    async def due_records(self, table: Table, *, now: float, limit: int) -> list[Record]:
        """Return up to ``limit`` records with ``due <= now``, earliest ``due`` first, then
        by key. Reads only."""

    @abc.abstractmethod
    async def change_records(
        self, table: Table, keys: Sequence[str], decide: Decide[T], *, fence: Fence | None = None
    ) -> T:
        """In one atomic step: check ``fence`` (FencedOut as ``take_due``), read the records
        of ``keys``, call ``decide`` (pure, synchronous) with those found, apply its writes
        and deletes, and return its result. If ``decide`` raises, nothing is written."""

    # -- ScheduleStore ---------------------------------------------------------------------

    async def put_schedules(self, schedules: Sequence[Schedule], *, now: float) -> list[Schedule]:
        """Create (revision 0) or replace (same revision) every schedule, or none of them."""
        names = [s.name for s in schedules]
        if len(set(names)) != len(names):
            raise InvalidInput("a schedule name appears twice in one batch")
        if not schedules:
            return []

        def decide(current: Mapping[str, Record]) -> Change[list[Schedule]]:
            stored = [_put(s, _schedule_or_none(current.get(s.name)), now) for s in schedules]
            records = [_schedule_record(s) for s in stored]
            return Change([_schedule(r) for r in records], writes=records)

        return await self.change_records(Table.SCHEDULES, names, decide)

    async def get_schedules(self, names: Sequence[str]) -> list[Schedule | None]:
        """Return the schedule of each name, or None."""
        found = await self.read_records(Table.SCHEDULES, names) if names else {}
        return [_schedule_or_none(found.get(name)) for name in names]

    async def list_schedules(self) -> list[Schedule]:
        """Return every schedule, by name."""
        return [_schedule(r) for r in await self.scan_records(Table.SCHEDULES, Scan())]

    async def remove_schedules(self, names: Sequence[str]) -> list[bool]:
        """Delete schedules; per name whether it existed."""
        if not names:
            return []

        def decide(current: Mapping[str, Record]) -> Change[list[bool]]:
            return Change([name in current for name in names], deletes=list(current))

        return await self.change_records(Table.SCHEDULES, names, decide)

    async def due_schedules(self, *, now: float, limit: int) -> list[Schedule]:
        """Schedules not paused with ``next_tick <= now``, earliest first."""
        due = await self.due_records(Table.SCHEDULES, now=now, limit=limit)
        return [_schedule(r) for r in due]

    async def next_tick(self) -> float | None:
        """The earliest next tick of the schedules not paused."""
        first = await self.due_records(Table.SCHEDULES, now=math.inf, limit=1)
        return first[0].due if first else None

    async def advance_schedules(
        self, advances: Sequence[Advance], *, now: float, fence: Fence
    ) -> list[bool]:
        """Apply each advance whose revision is still current, after checking the fence."""

        def write(index: int, record: Record) -> Record:
            return _schedule_record(advanced(_schedule(record), advances[index], now))

        wanted = [(a.name, a.revision) for a in advances]
        decide = partial(_compare_and_set, wanted=wanted, write=write)
        keys = [name for name, _ in wanted]
        return await self.change_records(Table.SCHEDULES, keys, decide, fence=fence)

    # -- WorkflowStore: definitions --------------------------------------------------------

    async def put_definitions(self, definitions: Sequence[Definition], *, now: float) -> list[bool]:
        """Create each (name, version) not stored yet; a stored one must have the same steps."""
        keys = [definition_key(d.name, d.version) for d in definitions]
        if len(set(keys)) != len(keys):
            raise InvalidInput("a workflow version appears twice in one batch")
        if not definitions:
            return []

        def decide(current: Mapping[str, Record]) -> Change[list[bool]]:
            new = [_definition_record(d, now) for d in definitions]
            for definition, record in zip(definitions, new, strict=True):
                stored = current.get(record.key)
                if stored is not None and loads(stored.body) != loads(record.body):
                    raise AlreadyExists(changed_definition(definition.name, definition.version))
            created = [record.key not in current for record in new]
            return Change(created, writes=[r for r in new if r.key not in current])

        return await self.change_records(Table.DEFINITIONS, keys, decide)

    async def get_definitions(
        self, keys: Sequence[tuple[str, int | None]]
    ) -> list[Definition | None]:
        """The definition of each (name, version); the latest for a None version."""
        exact = [definition_key(name, version) for name, version in keys if version is not None]
        found = await self.read_records(Table.DEFINITIONS, exact) if exact else {}
        latest = {name: await self._latest(name) for name, version in keys if version is None}
        picked = []
        for name, version in keys:
            record = None if version is None else found.get(definition_key(name, version))
            picked.append(latest[name] if version is None else _definition_or_none(record))
        return picked

    async def list_definitions(self) -> list[Definition]:
        """Every definition, by name, then version."""
        records = await self.scan_records(Table.DEFINITIONS, Scan())
        return sorted((_definition(r) for r in records), key=lambda d: (d.name, d.version))

    async def _latest(self, name: str) -> Definition | None:
        versions = [_definition(r) for r in await self.scan_records(Table.DEFINITIONS, Scan(name))]
        return max(versions, key=lambda d: d.version, default=None)

    # -- WorkflowStore: runs ---------------------------------------------------------------

    async def create_runs(self, runs: Sequence[Run]) -> list[Run]:
        """Store new runs at revision 1, all or none."""
        if not runs:
            return []
        ids = [run.id for run in runs]

        def decide(current: Mapping[str, Record]) -> Change[list[Run]]:
            if len(set(ids)) != len(ids) or current:
                raise AlreadyExists("a workflow run with this id exists already")
            records = [_run_record(run.replace(revision=1)) for run in runs]
            return Change([_run(r) for r in records], writes=records)

        return await self.change_records(Table.RUNS, ids, decide)

    async def get_runs(self, ids: Sequence[str]) -> list[Run | None]:
        """The run of each id, or None."""
        found = await self.read_records(Table.RUNS, ids) if ids else {}
        return [None if run_id not in found else _run(found[run_id]) for run_id in ids]

    async def update_runs(self, runs: Sequence[Run]) -> list[bool]:
        """Compare-and-set each run on its revision."""
        if not runs:
            return []

        def write(index: int, record: Record) -> Record:
            run = runs[index]
            return _run_record(run.replace(revision=run.revision + 1))

        wanted = [(run.id, run.revision) for run in runs]
        decide = partial(_compare_and_set, wanted=wanted, write=write)
        return await self.change_records(Table.RUNS, [key for key, _ in wanted], decide)

    async def list_runs(self, query: RunQuery) -> RunPage:
        """Runs matching ``query``, newest first (by id); the cursor is the last id of a page."""
        if query.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {query.limit}")
        states = None if query.states is None else frozenset(s.value for s in query.states)
        scan = Scan(query.workflow, states, query.cursor, query.limit + 1, newest_first=True)
        runs = [_run(r) for r in await self.scan_records(Table.RUNS, scan)]
        items = runs[: query.limit]
        return RunPage(items, items[-1].id if len(runs) > query.limit else None)

    async def due_runs(self, *, now: float, limit: int) -> list[Run]:
        """Active runs whose ``wake_at`` passed, earliest first."""
        return [_run(r) for r in await self.due_records(Table.RUNS, now=now, limit=limit)]


# -- the decisions -------------------------------------------------------------------------


def definition_key(name: str, version: int) -> str:
    """The record key of one definition version."""
    return f"{name}@{version}"


def definition_version(key: str) -> int:
    """The version in a definition's record key (``definition_key``'s inverse)."""
    return int(key.rpartition("@")[2])


def changed_definition(name: str, version: int) -> str:
    """The AlreadyExists message for a stored version registered again with other steps."""
    return (
        f"workflow {name!r} version {version} is registered already with other steps; "
        "a version never changes: register it as a new version"
    )


def _compare_and_set(
    current: Mapping[str, Record],
    wanted: Sequence[tuple[str, int]],
    write: Callable[[int, Record], Record],
) -> Change[list[bool]]:
    """Per (key, revision) of ``wanted``: where the record still has that revision,
    replace it by ``write(index, record)``; an item sees the writes of those before it."""
    latest = dict(current)
    applied = []
    for index, (key, revision) in enumerate(wanted):
        record = latest.get(key)
        if record is None or record.revision != revision:
            applied.append(False)
            continue
        latest[key] = write(index, record)
        applied.append(True)
    changed = [r for key, r in latest.items() if r is not current.get(key)]
    return Change(applied, writes=changed)


def _put(schedule: Schedule, current: Schedule | None, now: float) -> Schedule:
    """The stored copy of ``schedule``, or AlreadyExists / StateConflict."""
    if schedule.revision == 0 and current is not None:
        raise name_taken(schedule)
    if schedule.revision != 0 and (current is None or current.revision != schedule.revision):
        raise revision_changed(schedule)
    return stored_copy(schedule, current, now)


def _key(record: Record) -> str:
    return record.key


def _schedule_record(schedule: Schedule) -> Record:
    due = None if schedule.paused else schedule.next_tick
    return Record(schedule.name, dumps(schedule_to_dict(schedule)), schedule.revision, due)


def _schedule(record: Record) -> Schedule:
    return schedule_from_dict(loads(record.body))


def _schedule_or_none(record: Record | None) -> Schedule | None:
    return None if record is None else _schedule(record)


def _definition_record(definition: Definition, now: float) -> Record:
    key = definition_key(definition.name, definition.version)
    body = dumps(definition_to_dict(definition))
    return Record(key, body, group=definition.name, created_at=now)


def _definition(record: Record) -> Definition:
    return definition_from_dict(loads(record.body))


def _definition_or_none(record: Record | None) -> Definition | None:
    return None if record is None else _definition(record)


def _run_record(run: Run) -> Record:
    body = dumps(run_to_dict(run))
    return Record(run.id, body, run.revision, run.due_at, run.workflow, run.state.value)


def _run(record: Record) -> Run:
    return run_from_dict(loads(record.body))
