"""The servicer of ``atp.v1.Fleet`` over the shared fleet operations.

As for ``atp.v1.Tasks``: every call authenticates first, and an atp error becomes the
status its class maps to, with ``atp-problem-type`` in the trailers.
"""

from __future__ import annotations

from typing import Any

from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard, Principal
from atp.adapters.grpc._services import _Base, guarded
from atp.sdk.wire import fleet as wire
from atp.sdk.wire.pb import fleet_pb2 as fpb
from atp.sdk.wire.pb import fleet_pb2_grpc

__all__ = ["FleetService"]


class FleetService(_Base, fleet_pb2_grpc.FleetServicer):
    """``atp.v1.Fleet``: the same reads as ``/v1/workers`` and ``/v1/breakers``."""

    def __init__(self, guard: Guard, operations: Operations) -> None:
        super().__init__(guard)
        self._ops = operations.fleet

    @guarded
    async def ListWorkers(self, who: Principal, request: fpb.ListWorkersRequest) -> Any:
        return wire.fleet_out(await self._ops.workers(who))

    @guarded
    async def ListBreakers(self, who: Principal, request: fpb.ListBreakersRequest) -> Any:
        found = await self._ops.breakers(who)
        return fpb.BreakerList(breakers=[wire.breaker_out(state) for state in found])
