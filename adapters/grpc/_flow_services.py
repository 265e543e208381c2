"""The servicers of ``atp.v1.Schedules`` and ``atp.v1.Workflows`` over the shared operations.

As for ``atp.v1.Tasks``: every call authenticates first, and an atp error becomes the
status its class maps to, with ``atp-problem-type`` in the trailers.
"""

from __future__ import annotations

from typing import Any

from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard, Principal
from atp.adapters.grpc._services import DEFAULT_PAGE, _Base, guarded
from atp.sdk.wire import flows
from atp.sdk.wire import tasks as convert
from atp.sdk.wire.pb import schedules_pb2 as spb
from atp.sdk.wire.pb import schedules_pb2_grpc, workflows_pb2_grpc
from atp.sdk.wire.pb import workflows_pb2 as wpb
from atp.sdk.wire.tasks import field_or_none

__all__ = ["SchedulesService", "WorkflowsService"]


class SchedulesService(_Base, schedules_pb2_grpc.SchedulesServicer):
    """``atp.v1.Schedules``: the same operations as ``/v1/schedules``."""

    def __init__(self, guard: Guard, operations: Operations) -> None:
        super().__init__(guard)
        self._ops = operations.schedules

    @guarded
    async def AddSchedule(self, who: Principal, request: spb.AddScheduleRequest) -> Any:
        schedule = await self._ops.add(
            who,
            name=request.name,
            expression=request.expression,
            subject=request.subject,
            payload=convert.json_in(request.payload, "payload"),
            tz=request.tz or "UTC",
            misfire=request.misfire or "once",
            overlap=request.overlap or "allow",
        )
        return flows.schedule_out(schedule)

    @guarded
    async def GetSchedule(self, who: Principal, request: spb.ScheduleName) -> Any:
        return flows.schedule_out(await self._ops.get(who, _name(request)))

    @guarded
    async def ListSchedules(self, who: Principal, request: spb.ListSchedulesRequest) -> Any:
        found = await self._ops.list(who)
        return spb.ScheduleList(items=[flows.schedule_out(s) for s in found])

    @guarded
    async def PauseSchedule(self, who: Principal, request: spb.ScheduleName) -> Any:
        return flows.schedule_out(await self._ops.pause(who, _name(request)))

    @guarded
    async def ResumeSchedule(self, who: Principal, request: spb.ScheduleName) -> Any:
        return flows.schedule_out(await self._ops.resume(who, _name(request)))

    @guarded
    async def TriggerSchedule(self, who: Principal, request: spb.ScheduleName) -> Any:
        return convert.published_out(await self._ops.trigger(who, _name(request)))

    @guarded
    async def RemoveSchedule(self, who: Principal, request: spb.ScheduleName) -> Any:
        await self._ops.remove(who, _name(request))
        return spb.RemoveScheduleResponse()


def _name(request: spb.ScheduleName) -> str:
    return convert.id_in(request.name, "schedule name")


class WorkflowsService(_Base, workflows_pb2_grpc.WorkflowsServicer):
    """``atp.v1.Workflows``: the same operations as ``/v1/workflows`` and ``/v1/runs``."""

    def __init__(self, guard: Guard, operations: Operations) -> None:
        super().__init__(guard)
        self._ops = operations.workflows

    @guarded
    async def RegisterWorkflow(self, who: Principal, request: wpb.RegisterWorkflowRequest) -> Any:
        data = convert.json_in(request.definition, "definition")
        definition, created = await self._ops.register(who, data)
        return wpb.RegisterWorkflowResponse(
            name=definition.name, version=definition.version, created=created
        )

    @guarded
    async def GetWorkflow(self, who: Principal, request: wpb.GetWorkflowRequest) -> Any:
        version = field_or_none(request, "version")
        name = convert.id_in(request.name, "workflow name")
        return flows.definition_out(await self._ops.definition(who, name, version))

    @guarded
    async def ListWorkflows(self, who: Principal, request: wpb.ListWorkflowsRequest) -> Any:
        found = await self._ops.definitions(who)
        return wpb.WorkflowList(items=[flows.definition_out(d) for d in found])

    @guarded
    async def StartRun(self, who: Principal, request: wpb.StartRunRequest) -> Any:
        run_id = field_or_none(request, "run_id")
        run = await self._ops.start(
            who,
            convert.id_in(request.workflow, "workflow name"),
            convert.json_in(request.input, "input"),
            version=field_or_none(request, "version"),
            run_id=None if run_id is None else convert.id_in(run_id, "run id"),
        )
        return flows.run_out(run)

    @guarded
    async def GetRun(self, who: Principal, request: wpb.RunId) -> Any:
        return flows.run_out(await self._ops.get(who, convert.id_in(request.id, "run id")))

    @guarded
    async def ListRuns(self, who: Principal, request: wpb.ListRunsRequest) -> Any:
        page = await self._ops.list(
            who,
            workflow=field_or_none(request, "workflow"),
            states=list(request.states) or None,
            cursor=field_or_none(request, "cursor"),
            limit=request.limit or DEFAULT_PAGE,
        )
        return flows.run_page_out(page)

    @guarded
    async def SignalRun(self, who: Principal, request: wpb.SignalRunRequest) -> Any:
        run_id = convert.id_in(request.run_id, "run id")
        payload = convert.json_in(request.payload, "payload")
        return flows.run_out(await self._ops.signal(who, run_id, request.name, payload))

    @guarded
    async def CancelRun(self, who: Principal, request: wpb.RunId) -> Any:
        return flows.run_out(await self._ops.cancel(who, convert.id_in(request.id, "run id")))
