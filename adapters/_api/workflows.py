"""Workflow operations both APIs offer, checked against the caller's scopes.

Reading definitions and runs needs ``read``; registering a definition needs ``admin``.
Starting, signalling and cancelling a run need ``publish`` on every subject the run's
definition publishes to (its task steps' subjects and compensations): a run publishes
those tasks on the caller's behalf, and cancelling one cancels them, as a task is
cancelled by whoever may publish it. A definition that publishes to no subject (only
sleeps and signals) needs ``publish`` on its own name. ``admin`` may do all of it.
Every check runs before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from atp.adapters._auth.config import ServerSettings
from atp.adapters._auth.guard import Principal
from atp.core.model import JSON
from atp.core.platform import Platform
from atp.core.workflows.definition import Definition, StepKind, definition_from_dict
from atp.core.workflows.engine import WorkflowEngine
from atp.core.workflows.runs import Run, RunPage

__all__ = ["WorkflowOperations", "published_subjects"]


def published_subjects(definition: Definition) -> list[str]:
    """The subjects a run of ``definition`` publishes to, in order, without repeats
    (a sleep step's timer task is atp's own and needs no scope)."""
    found: dict[str, None] = {}
    for step in definition.steps:
        if step.kind is StepKind.TASK:
            found.update(dict.fromkeys(s for s in (step.subject, step.compensate) if s))
    return list(found)


class WorkflowOperations:
    """The workflow operations on behalf of one caller at a time."""

    def __init__(self, platform: Platform, server: ServerSettings) -> None:
        self._platform = platform
        self._engine: WorkflowEngine | None = None
        self._server = server

    @property
    def engine(self) -> WorkflowEngine:
        """The engine, built on first use; ConfigError if the store keeps no workflows."""
        if self._engine is None:
            self._engine = WorkflowEngine(self._platform)
        return self._engine

    async def register(self, who: Principal, data: JSON) -> tuple[Definition, bool]:
        """Check and store one definition from its JSON object (scope ``admin``); whether
        it was new. AlreadyExists if that version is stored with other steps."""
        definition = definition_from_dict(data)
        who.scopes.require_admin()
        (created,) = await self.engine.register([definition])
        return definition, created

    async def definition(self, who: Principal, name: str, version: int | None) -> Definition:
        who.scopes.require_read()
        return await self.engine.definition(name, version)

    async def definitions(self, who: Principal) -> list[Definition]:
        who.scopes.require_read()
        return await self.engine.definitions()

    async def start(
        self, who: Principal, name: str, input: JSON, *, version: int | None, run_id: str | None
    ) -> Run:
        """Start a run; the caller may publish to every subject of the definition."""
        definition = await self.engine.definition(name, version)
        self._require_run(who, definition)
        return await self.engine.start(name, input, version=definition.version, run_id=run_id)

    async def get(self, who: Principal, run_id: str) -> Run:
        who.scopes.require_read()
        return await self.engine.get(run_id)

    async def list(
        self,
        who: Principal,
        *,
        workflow: str | None,
        states: Sequence[str] | None,
        cursor: str | None,
        limit: int,
    ) -> RunPage:
        who.scopes.require_read()
        self._server.check_page(limit)
        return await self.engine.list(workflow=workflow, states=states, cursor=cursor, limit=limit)

    async def signal(self, who: Principal, run_id: str, name: str, payload: JSON) -> Run:
        await self._require_stored_run(who, run_id)
        return await self.engine.signal(run_id, name, payload)

    async def cancel(self, who: Principal, run_id: str) -> Run:
        await self._require_stored_run(who, run_id)
        return await self.engine.cancel(run_id)

    async def _require_stored_run(self, who: Principal, run_id: str) -> None:
        if who.scopes.admin:
            return
        run = await self.engine.get(run_id)
        self._require_run(who, await self.engine.definition(run.workflow, run.version))

    def _require_run(self, who: Principal, definition: Definition) -> None:
        who.scopes.require_run(definition.name, published_subjects(definition))
