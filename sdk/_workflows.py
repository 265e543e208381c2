"""The workflow methods of ``Client`` and ``SyncClient``, kept apart from the task methods."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from atp.core.errors import ConfigError, InvalidInput
from atp.core.model import JSON
from atp.core.workflows.definition import Definition, definition_from_dict
from atp.core.workflows.engine import WorkflowEngine
from atp.core.workflows.runs import Run, RunPage, RunState
from atp.sdk.workflow import Workflow

if TYPE_CHECKING:
    from atp.core.platform import Platform
    from atp.sdk.client import Client

__all__ = ["SyncWorkflowMethods", "WorkflowMethods", "as_definition"]

T = TypeVar("T")
WorkflowLike = Workflow | Definition | dict[str, Any]


def as_definition(workflow: WorkflowLike) -> Definition:
    """A checked Definition from a Workflow, a Definition or a definition's JSON object."""
    if isinstance(workflow, Workflow):
        return workflow.definition
    if isinstance(workflow, Definition):
        return workflow.check()
    if isinstance(workflow, dict):
        return definition_from_dict(workflow)
    raise InvalidInput(f"expected a Workflow or a definition's JSON object, got {workflow!r}")


class WorkflowMethods:
    """Register workflows, start, signal, cancel and read runs.

    A direct client runs the engine on its platform; a remote one (``http://``,
    ``grpc://``) sets ``_workflow_engine`` to the server's operations instead."""

    platform: Platform
    _workflow_engine: WorkflowEngine | None = None

    def _engine(self) -> WorkflowEngine:
        if self._workflow_engine is None:
            if getattr(self, "platform", None) is None:
                raise ConfigError("this client has no platform and no server to run workflows on")
            self._workflow_engine = WorkflowEngine(self.platform)
        return self._workflow_engine

    async def register_workflow(self, *workflows: WorkflowLike) -> builtins.list[bool]:
        """Store workflow definitions (a Workflow, or its JSON object from any language);
        per item whether that version was new. A version stored with other steps is
        AlreadyExists: bump the version. Nothing of a bad batch is stored."""
        return await self._engine().register([as_definition(w) for w in workflows])

    async def get_workflow(self, name: str, version: int | None = None) -> Definition:
        """The definition of ``name`` at ``version`` (the latest by default); NotFound."""
        return await self._engine().definition(name, version)

    async def list_workflows(self) -> builtins.list[Definition]:
        """Every registered definition, by name, then version."""
        return await self._engine().definitions()

    async def start_workflow(
        self,
        name: str,
        input: JSON = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Start a run of ``name`` (the latest version unless ``version``); the steps
        without parents are enqueued at once. NotFound for an unknown workflow."""
        return await self._engine().start(name, input, version=version, run_id=run_id)

    async def signal(self, run_id: str, name: str, payload: JSON = None) -> Run:
        """Send signal ``name`` with ``payload`` to a run; see ``WorkflowEngine.signal``."""
        return await self._engine().signal(run_id, name, payload)

    async def get_run(self, run_id: str) -> Run:
        """The run: each step's state, task id, attempts, result, error and timings."""
        return await self._engine().get(run_id)

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        states: Sequence[RunState | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> RunPage:
        """List runs, newest first."""
        return await self._engine().list(
            workflow=workflow, states=states, cursor=cursor, limit=limit
        )

    async def cancel_run(self, run_id: str) -> Run:
        """Cancel a run: pending steps are cancelled, running step tasks asked to stop."""
        return await self._engine().cancel(run_id)


class SyncWorkflowMethods:
    """The same methods, blocking, for ``SyncClient``."""

    _client: Client

    def _call(self, awaitable: Awaitable[T]) -> T:
        raise NotImplementedError  # pragma: no cover - SyncClient defines it

    def register_workflow(self, *workflows: WorkflowLike) -> builtins.list[bool]:
        """As ``Client.register_workflow``."""
        return self._call(self._client.register_workflow(*workflows))

    def start_workflow(
        self,
        name: str,
        input: JSON = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> Run:
        """As ``Client.start_workflow``."""
        return self._call(self._client.start_workflow(name, input, version=version, run_id=run_id))

    def signal(self, run_id: str, name: str, payload: JSON = None) -> Run:
        """As ``Client.signal``."""
        return self._call(self._client.signal(run_id, name, payload))

    def get_run(self, run_id: str) -> Run:
        """As ``Client.get_run``."""
        return self._call(self._client.get_run(run_id))

    def list_runs(self, *, workflow: str | None = None, limit: int = 100) -> RunPage:
        """As ``Client.list_runs``."""
        return self._call(self._client.list_runs(workflow=workflow, limit=limit))

    def cancel_run(self, run_id: str) -> Run:
        """As ``Client.cancel_run``."""
        return self._call(self._client.cancel_run(run_id))
