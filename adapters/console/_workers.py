"""The workers page: the workers the coordinator's registry lists, the scheduler's
leader, and the circuit breakers of the worker groups."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Principal
from atp.adapters.console._render import ConsoleRoute, Look, operations, render
from atp.core.errors import ConfigError
from atp.core.flow.breaker import BreakerState

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/workers")
async def workers(request: Request, viewer: Look) -> Response:
    """The whole page, or its live part for a refresh."""
    ops = operations(request)
    fleet = await ops.fleet.workers(viewer.principal)
    context = {
        "fleet": fleet,
        "slots": sum(member.concurrency for member in fleet.workers),
        "busy": sum(member.running for member in fleet.workers),
        "breakers": await _breakers(ops, viewer.principal),
    }
    return render(request, "workers.html", context, fragment="_workers_live.html")


async def _breakers(ops: Operations, who: Principal) -> list[BreakerState] | None:
    """The breakers; None if the store keeps none (the page says so, not an error)."""
    try:
        return await ops.fleet.breakers(who)
    except ConfigError:
        return None
