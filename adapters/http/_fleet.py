"""The ``/v1/workers`` and ``/v1/breakers`` routes: the fleet (ADR 0040, 0041). Both need
scope ``read``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from atp.adapters.http._routes import Ops, Who, _problems
from atp.core.fleet import Fleet
from atp.core.flow.breaker import BreakerState
from atp.sdk.wire import fleet as wire

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["fleet"])


class WorkerOut(BaseModel):
    """One worker process as it last announced itself."""

    name: str = Field(description="Unique per worker process")
    role: str
    host: str
    pid: int
    version: str = Field(description="The atp version it runs")
    group: str = Field(description="Its consumer group")
    patterns: list[str] = Field(description="The subject patterns it consumes")
    concurrency: int
    running: int = Field(description="Attempts in flight when it last announced")
    started_at: float
    seen_at: float = Field(description="Its last announcement, by its own clock")
    expires_at: float = Field(description="Listed until then unless it announces again")


class LeaderOut(BaseModel):
    """The scheduler leader's lease."""

    lease: str
    owner: str = Field(description="The leading scheduler replica")
    token: int = Field(description="Fencing token: grows on every change of leader")
    expires_at: float


class FleetOut(BaseModel):
    """The live workers, sorted by name, and the scheduler's leader (null while none
    leads). ``registry`` is false when the coordinator keeps no registry."""

    workers: list[WorkerOut]
    leader: LeaderOut | None
    registry: bool

    @classmethod
    def of(cls, found: Fleet) -> FleetOut:
        return cls.model_validate(wire.fleet_to_dict(found))


class BreakerOut(BaseModel):
    """One circuit breaker of a worker group and subject, as its ledger keeps it."""

    key: str = Field(description="<group>/<subject>")
    group: str
    subject: str
    circuit: Literal["closed", "open", "half-open"]
    window_start: float = Field(description="Start of the current fixed window")
    ok: int
    failed: int
    prev_ok: int = Field(description="Successes in the previous fixed window")
    prev_failed: int
    open_until: float = Field(description="While open: when a probe may run")
    probe: str = Field(description="While half-open: the probe's task id")
    probe_until: float
    changed_at: float = Field(description="When the circuit last changed")
    changed_by: str = Field("", description="Who changed it then: a worker's name")

    @classmethod
    def of(cls, state: BreakerState) -> BreakerOut:
        return cls.model_validate(wire.breaker_to_dict(state))


class BreakersOut(BaseModel):
    """Every breaker not closed, and every closed one that counted lately, by key."""

    breakers: list[BreakerOut]


@router.get("/workers", response_model=FleetOut, responses=_problems())
async def workers(ops: Ops, who: Who) -> FleetOut:
    """The workers listed in the coordinator's registry, each gone once its TTL passed
    without an announcement, and the scheduler's leader with its fencing token (scope
    ``read``)."""
    return FleetOut.of(await ops.fleet.workers(who))


@router.get("/breakers", response_model=BreakersOut, responses=_problems(500))
async def breakers(ops: Ops, who: Who) -> BreakersOut:
    """The circuit breakers (scope ``read``); 500 ``config-error`` if the store keeps
    none."""
    found = await ops.fleet.breakers(who)
    return BreakersOut(breakers=[BreakerOut.of(state) for state in found])
