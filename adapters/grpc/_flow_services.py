"""The servicers of ``atp.v1.Schedules`` and ``atp.v1.Workflows`` over the shared operations.

As for ``atp.v1.Tasks``: every call authenticates first, and an atp error becomes the
status its class maps to, with ``atp-problem-type`` in the trailers.
"""

from __future__ import annotations

from typing import Any

from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard
from atp.adapters.grpc._services import DEFAULT_PAGE, Ctx, _Base, guarded
from atp.sdk.wire import flows
from atp.sdk.wire import tasks as convert
from atp.sdk.wire.pb import schedules_pb2 as spb
from atp.sdk.wire.pb import schedules_pb2_grpc, workflows_pb2_grpc
from atp.sdk.wire.pb import workflows_pb2 as wpb

__all__ = ["SchedulesService", "WorkflowsService"]


class SchedulesService(_Base, schedules_pb2_grpc.SchedulesServicer):
    """``atp.v1.Schedules``: the same operations as ``/v1/schedules``."""

    def __init__(self, guard: Guard, operations: Operations) -> None:
        super().__init__(guard)
        self._ops = operations.schedules

    @guarded
    async def AddSchedule(self, request: spb.AddScheduleRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        schedule = await self._ops.add(
            who, name=request.name, expression=request.expression, subject=request.subject,
            payload=convert.json_in(request.payload, "payload"), tz=request.tz or "UTC",
            misfire=request.misfire or "once", overlap=request.overlap or "allow",
        )  # fmt: skip
        return flows.schedule_out(schedule)

    @guarded
    async def GetSchedule(self, request: spb.ScheduleName, context: Ctx) -> Any:
        who = await self._caller(context)
        return flows.schedule_out(await self._ops.get(who, request.name))

    @guarded
    async def ListSchedules(self, request: spb.ListSchedulesRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        found = await self._ops.list(who)
        return spb.ScheduleList(items=[flows.schedule_out(s) for s in found])

    @guarded
    async def PauseSchedule(self, request: spb.ScheduleName, context: Ctx) -> Any:
        who = await self._caller(context)
        return flows.schedule_out(await self._ops.pause(who, request.name))

    @guarded
    async def ResumeSchedule(self, request: spb.ScheduleName, context: Ctx) -> Any:
        who = await self._caller(context)
        return flows.schedule_out(await self._ops.resume(who, request.name))

    @guarded
    async def TriggerSchedule(self, request: spb.ScheduleName, context: Ctx) -> Any:
        who = await self._caller(context)
        return convert.published_out(await self._ops.trigger(who, request.name))

    @guarded
    async def RemoveSchedule(self, request: spb.ScheduleName, context: Ctx) -> Any:
        who = await self._caller(context)
        await self._ops.remove(who, request.name)
        return spb.RemoveScheduleResponse()


class WorkflowsService(_Base, workflows_pb2_grpc.WorkflowsServicer):
    """``atp.v1.Workflows``: the same operations as ``/v1/workflows`` and ``/v1/runs``."""

    def __init__(self, guard: Guard, operations: Operations) -> None:
        super().__init__(guard)
        self._ops = operations.workflows

    @guarded
    async def RegisterWorkflow(self, request: wpb.RegisterWorkflowRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        data = convert.json_in(request.definition, "definition")
        definition, created = await self._ops.register(who, data)
        return wpb.RegisterWorkflowResponse(name=definition.name, version=definition.version,
                                            created=created)  # fmt: skip

    @guarded
    async def GetWorkflow(self, request: wpb.GetWorkflowRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        version = request.version if request.HasField("version") else None
        return flows.definition_out(await self._ops.definition(who, request.name, version))

    @guarded
    async def ListWorkflows(self, request: wpb.ListWorkflowsRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        found = await self._ops.definitions(who)
        return wpb.WorkflowList(items=[flows.definition_out(d) for d in found])

    @guarded
    async def StartRun(self, request: wpb.StartRunRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        run = await self._ops.start(
            who, request.workflow, convert.json_in(request.input, "input"),
            version=request.version if request.HasField("version") else None,
            run_id=request.run_id if request.HasField("run_id") else None,
        )  # fmt: skip
        return flows.run_out(run)

    @guarded
    async def GetRun(self, request: wpb.RunId, context: Ctx) -> Any:
        who = await self._caller(context)
        return flows.run_out(await self._ops.get(who, request.id))

    @guarded
    async def ListRuns(self, request: wpb.ListRunsRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        page = await self._ops.list(
            who,
            workflow=request.workflow if request.HasField("workflow") else None,
            states=list(request.states) or None,
            cursor=request.cursor if request.HasField("cursor") else None,
            limit=request.limit or DEFAULT_PAGE,
        )
        return flows.run_page_out(page)

    @guarded
    async def SignalRun(self, request: wpb.SignalRunRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        payload = convert.json_in(request.payload, "payload")
        return flows.run_out(await self._ops.signal(who, request.run_id, request.name, payload))

    @guarded
    async def CancelRun(self, request: wpb.RunId, context: Ctx) -> Any:
        who = await self._caller(context)
        return flows.run_out(await self._ops.cancel(who, request.id))
