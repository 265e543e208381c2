"""The servicer of ``atp.v1.FlowService`` over the shared flow-control operations.

As for ``atp.v1.Tasks``: every call authenticates first, and an atp error becomes the
status its class maps to, with ``atp-problem-type`` in the trailers.
"""

from __future__ import annotations

from typing import Any

from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard, Principal
from atp.adapters.grpc._services import _Base, guarded
from atp.sdk.wire import limits
from atp.sdk.wire import tasks as convert
from atp.sdk.wire.pb import flow_pb2 as fpb
from atp.sdk.wire.pb import flow_pb2_grpc

__all__ = ["FlowService"]


class FlowService(_Base, flow_pb2_grpc.FlowServiceServicer):
    """``atp.v1.FlowService``: the same operations as ``/v1/limits`` and ``/v1/pauses``."""

    def __init__(self, guard: Guard, operations: Operations) -> None:
        super().__init__(guard)
        self._ops = operations.flow

    @guarded
    async def GetLimits(self, who: Principal, request: fpb.GetLimitsRequest) -> Any:
        return limits.status_out(await self._ops.status(who))

    @guarded
    async def SetLimit(self, who: Principal, request: fpb.SetLimitRequest) -> Any:
        who.scopes.require_admin()  # before decoding: a reader learns nothing from errors
        stored = await self._ops.set_limit(who, limits.set_limit_in(request))
        return limits.limit_out(stored)

    @guarded
    async def RemoveLimit(self, who: Principal, request: fpb.LimitTarget) -> Any:
        target = convert.id_in(request.target, "limit target")  # a lookup, bounded
        await self._ops.remove_limit(who, target, key=request.key)
        return fpb.RemoveLimitResponse()

    @guarded
    async def Pause(self, who: Principal, request: fpb.PauseRequest) -> Any:
        return fpb.PauseResponse(changed=await self._ops.pause(who, request.pattern))

    @guarded
    async def Resume(self, who: Principal, request: fpb.PauseRequest) -> Any:
        return fpb.ResumeResponse(woken=await self._ops.resume(who, request.pattern))
