"""Between the fleet's core types (``atp.core.fleet``) and their REST bodies and protobuf
messages, both ways: the server sends ``*_out``, the SDK's clients read ``*_in``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atp.core.fleet import Fleet
from atp.core.flow.breaker import BreakerState, state_from_dict, state_to_dict
from atp.core.ports import Lease, Member
from atp.core.registry import member_from_dict, member_to_dict
from atp.sdk.wire.pb import fleet_pb2 as fpb

__all__ = [
    "breaker_from_dict",
    "breaker_in",
    "breaker_out",
    "breaker_to_dict",
    "fleet_from_dict",
    "fleet_in",
    "fleet_out",
    "fleet_to_dict",
    "leader_to_dict",
]

_MEMBER_FIELDS = (
    "name",
    "role",
    "host",
    "pid",
    "version",
    "group",
    "concurrency",
    "running",
    "started_at",
    "seen_at",
    "expires_at",
)
_COUNTS = ("ok", "failed", "prev_ok", "prev_failed")
_STATE_FIELDS = (
    "window_start",
    *_COUNTS,
    "open_until",
    "probe",
    "probe_until",
    "changed_at",
    "changed_by",
)

# -- JSON ----------------------------------------------------------------------------------


def fleet_to_dict(found: Fleet) -> dict[str, Any]:
    """``{"workers": [...], "leader": {...} | null, "registry": bool}``."""
    return {
        "workers": [member_to_dict(member) for member in found.workers],
        "leader": None if found.leader is None else leader_to_dict(found.leader),
        "registry": found.registry,
    }


def leader_to_dict(lease: Lease) -> dict[str, Any]:
    return {
        "lease": lease.name,
        "owner": lease.owner,
        "token": lease.token,
        "expires_at": lease.expires_at,
    }


def fleet_from_dict(body: Mapping[str, Any]) -> Fleet:
    leader = body.get("leader")
    return Fleet(
        workers=tuple(member_from_dict(item) for item in body["workers"]),
        leader=None if leader is None else _lease(leader),
        registry=bool(body["registry"]),
    )


def breaker_to_dict(state: BreakerState) -> dict[str, Any]:
    """The ledger's fields, with the key's ``group`` and ``subject`` beside it."""
    return {"group": state.group, "subject": state.subject, **state_to_dict(state)}


def breaker_from_dict(body: Mapping[str, Any]) -> BreakerState:
    return state_from_dict(dict(body))


def _lease(body: Mapping[str, Any]) -> Lease:
    return Lease(
        str(body["lease"]), str(body["owner"]), int(body["token"]), float(body["expires_at"])
    )


# -- protobuf ------------------------------------------------------------------------------


def fleet_out(found: Fleet) -> fpb.WorkerList:
    message = fpb.WorkerList(
        workers=[_member_out(member) for member in found.workers], registry=found.registry
    )
    if found.leader is not None:
        lease = found.leader
        message.leader.CopyFrom(
            fpb.Leader(
                lease=lease.name, owner=lease.owner, token=lease.token, expires_at=lease.expires_at
            )
        )
    return message


def fleet_in(message: fpb.WorkerList) -> Fleet:
    leader = None
    if message.HasField("leader"):
        held = message.leader
        leader = Lease(held.lease, held.owner, held.token, held.expires_at)
    return Fleet(tuple(_member_in(item) for item in message.workers), leader, message.registry)


def breaker_out(state: BreakerState) -> fpb.CircuitBreaker:
    data: dict[str, Any] = {name: getattr(state, name) for name in _STATE_FIELDS}
    return fpb.CircuitBreaker(
        key=state.key, group=state.group, subject=state.subject, circuit=state.circuit, **data
    )


def breaker_in(message: fpb.CircuitBreaker) -> BreakerState:
    data: dict[str, Any] = {name: getattr(message, name) for name in _STATE_FIELDS}
    return state_from_dict({"key": message.key, "circuit": message.circuit, **data})


def _member_out(member: Member) -> fpb.Worker:
    data = {name: getattr(member, name) for name in _MEMBER_FIELDS}
    return fpb.Worker(patterns=list(member.patterns), **data)


def _member_in(message: fpb.Worker) -> Member:
    data: dict[str, Any] = {name: getattr(message, name) for name in _MEMBER_FIELDS}
    return Member(patterns=tuple(message.patterns), **data)
