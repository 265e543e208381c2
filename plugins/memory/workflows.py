"""The WorkflowStore half of MemoryStore: definitions and runs in dicts.

Mixed into MemoryStore, which creates the tables in its ``__init__``. Like the rest of the
store, no method awaits in the middle of a change, so each call is atomic. Runs are copied
through their JSON form on the way in and out, as a real store would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from atp.core.codec import dumps, loads
from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.workflows.definition import Definition, definition_to_dict
from atp.core.workflows.runs import (
    ACTIVE_RUN_STATES,
    Run,
    RunPage,
    RunQuery,
    run_from_dict,
    run_to_dict,
)

__all__ = ["MemoryWorkflows", "WorkflowTables"]


@dataclass(slots=True)
class WorkflowTables:
    """What a MemoryStore keeps for workflows."""

    definitions: dict[tuple[str, int], Definition] = field(default_factory=dict)
    runs: dict[str, bytes] = field(default_factory=dict)
    """Each run's JSON, by id: a copy no caller can change."""


class MemoryWorkflows:
    """WorkflowStore methods over ``self._workflows``."""

    _workflows: WorkflowTables

    async def put_definitions(self, definitions: Sequence[Definition], *, now: float) -> list[bool]:
        """Create each (name, version) not stored yet; a stored one must have the same steps."""
        keys = [(d.name, d.version) for d in definitions]
        if len(set(keys)) != len(keys):
            raise InvalidInput("a workflow version appears twice in one batch")
        stored = self._workflows.definitions
        for definition, key in zip(definitions, keys, strict=True):
            if key in stored and definition_to_dict(stored[key]) != definition_to_dict(definition):
                raise AlreadyExists(_changed(*key))
        created = [key not in stored for key in keys]
        for definition, key in zip(definitions, keys, strict=True):
            stored.setdefault(key, definition)
        return created

    async def get_definitions(
        self, keys: Sequence[tuple[str, int | None]]
    ) -> list[Definition | None]:
        """The definition of each (name, version); the latest for a None version."""
        return [self._definition(name, version) for name, version in keys]

    async def list_definitions(self) -> list[Definition]:
        """Every definition, by name, then version."""
        return [self._workflows.definitions[key] for key in sorted(self._workflows.definitions)]

    async def create_runs(self, runs: Sequence[Run]) -> list[Run]:
        """Store new runs at revision 1, all or none."""
        stored = self._workflows.runs
        ids = [run.id for run in runs]
        if len(set(ids)) != len(ids) or any(run_id in stored for run_id in ids):
            raise AlreadyExists("a workflow run with this id exists already")
        created = [run.replace(revision=1) for run in runs]
        encoded = [_encode(run) for run in created]  # InvalidInput before anything is stored
        for run, body in zip(created, encoded, strict=True):
            stored[run.id] = body
        return [_decode(body) for body in encoded]

    async def get_runs(self, ids: Sequence[str]) -> list[Run | None]:
        """The run of each id, or None."""
        stored = self._workflows.runs
        return [_decode(stored[run_id]) if run_id in stored else None for run_id in ids]

    async def update_runs(self, runs: Sequence[Run]) -> list[bool]:
        """Compare-and-set each run on its revision."""
        stored = self._workflows.runs
        applied = []
        for run in runs:
            current = stored.get(run.id)
            if current is None or _decode(current).revision != run.revision:
                applied.append(False)
                continue
            stored[run.id] = _encode(run.replace(revision=run.revision + 1))
            applied.append(True)
        return applied

    async def list_runs(self, query: RunQuery) -> RunPage:
        """Runs matching ``query``, newest first; a scan, as runs are few next to tasks."""
        if query.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {query.limit}")
        found = []
        for run_id in sorted(self._workflows.runs, reverse=True):
            if query.cursor is not None and run_id >= query.cursor:
                continue
            run = _decode(self._workflows.runs[run_id])
            if _matches(run, query):
                found.append(run)
                if len(found) > query.limit:
                    break
        more = len(found) > query.limit
        items = found[: query.limit]
        return RunPage(items, items[-1].id if more else None)

    async def due_runs(self, *, now: float, limit: int) -> list[Run]:
        """Active runs whose ``wake_at`` passed, earliest first; a scan."""
        runs = [_decode(body) for body in self._workflows.runs.values()]
        due = [r for r in runs if r.state in ACTIVE_RUN_STATES and r.wake_at is not None
               and r.wake_at <= now]  # fmt: skip
        return sorted(due, key=lambda r: (r.wake_at, r.id))[:limit]

    def _definition(self, name: str, version: int | None) -> Definition | None:
        definitions = self._workflows.definitions
        if version is not None:
            return definitions.get((name, version))
        versions = [v for (n, v) in definitions if n == name]
        return definitions[name, max(versions)] if versions else None


def _matches(run: Run, query: RunQuery) -> bool:
    if query.workflow is not None and run.workflow != query.workflow:
        return False
    return query.states is None or run.state in query.states


def _changed(name: str, version: int) -> str:
    return (
        f"workflow {name!r} version {version} is registered already with other steps; "
        "a version never changes: register it as a new version"
    )


def _encode(run: Run) -> bytes:
    return dumps(run_to_dict(run))


def _decode(body: bytes) -> Run:
    return run_from_dict(loads(body))
