"""The workflow methods of ``Client``, kept apart from the task methods."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.model import JSON
from atp.core.workflows.definition import Definition, definition_from_dict
from atp.core.workflows.runs import Run, RunPage, RunState
from atp.sdk._operations import Operations
from atp.sdk.workflow import Workflow

__all__ = ["WorkflowMethods", "as_definition"]

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
    """Register workflows, start, signal, cancel and read runs, on the client's
    ``Operations``: the engine on its platform, or a server's (``http://``, ``grpc://``)."""

    _ops: Operations

    async def register_workflow(self, *workflows: WorkflowLike) -> builtins.list[bool]:
        """Store workflow definitions (a Workflow, or its JSON object from any language);
        per item whether that version was new. A version stored with other steps is
        AlreadyExists: bump the version. Nothing of a bad batch is stored."""
        return await self._ops.workflows.register([as_definition(w) for w in workflows])

    async def get_workflow(self, name: str, version: int | None = None) -> Definition:
        """The definition of ``name`` at ``version`` (the latest by default); NotFound."""
        return await self._ops.workflows.definition(name, version)

    async def list_workflows(self) -> builtins.list[Definition]:
        """Every registered definition, by name, then version."""
        return await self._ops.workflows.definitions()

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
        return await self._ops.workflows.start(name, input, version=version, run_id=run_id)

    async def signal(self, run_id: str, name: str, payload: JSON = None) -> Run:
        """Send signal ``name`` with ``payload`` to a run; see ``WorkflowEngine.signal``."""
        return await self._ops.workflows.signal(run_id, name, payload)

    async def get_run(self, run_id: str) -> Run:
        """The run: each step's state, task id, attempts, result, error and timings."""
        return await self._ops.workflows.get(run_id)

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        states: Sequence[RunState | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> RunPage:
        """List runs, newest first."""
        return await self._ops.workflows.list(
            workflow=workflow, states=states, cursor=cursor, limit=limit
        )

    async def cancel_run(self, run_id: str) -> Run:
        """Cancel a run: pending steps are cancelled, running step tasks asked to stop."""
        return await self._ops.workflows.cancel(run_id)
