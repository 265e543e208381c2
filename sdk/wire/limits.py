"""Between protobuf messages and flow-control limits and status, both ways (the server
sends them out and reads ``SetLimitRequest``; the SDK's gRPC client does the opposite)."""

from __future__ import annotations

from atp.core.flow.rules import Limit, Rate
from atp.core.flow.service import FlowStatus
from atp.sdk.wire.pb import flow_pb2 as fpb
from atp.sdk.wire.tasks import field_or_none

__all__ = ["limit_in", "limit_out", "set_limit_in", "set_limit_out", "status_in", "status_out"]

Message = fpb.Limit | fpb.SetLimitRequest


def set_limit_in(message: fpb.SetLimitRequest) -> Limit:
    """The Limit a request asks for; InvalidInput (from ``Limit``) if it is malformed."""
    return _limit(message, 0.0)


def set_limit_out(limit: Limit) -> fpb.SetLimitRequest:
    message = fpb.SetLimitRequest(target=limit.target, key=limit.key)
    _fill(message, limit)
    return message


def limit_in(message: fpb.Limit) -> Limit:
    return _limit(message, message.updated_at)


def limit_out(limit: Limit) -> fpb.Limit:
    message = fpb.Limit(target=limit.target, key=limit.key, updated_at=limit.updated_at)
    _fill(message, limit)
    return message


def status_in(message: fpb.FlowStatus) -> FlowStatus:
    return FlowStatus(
        limits=tuple(limit_in(item) for item in message.limits),
        pauses=tuple(message.pauses),
        waiting=dict(message.waiting),
        version=message.version,
    )


def status_out(status: FlowStatus) -> fpb.FlowStatus:
    return fpb.FlowStatus(
        limits=[limit_out(limit) for limit in status.limits],
        pauses=list(status.pauses),
        waiting=dict(status.waiting),
        version=status.version,
    )


def _limit(message: Message, updated_at: float) -> Limit:
    return Limit(
        target=message.target,
        key=message.key,
        concurrency=field_or_none(message, "concurrency"),
        rate=_rate_in(message, "rate"),
        burst=field_or_none(message, "burst"),
        window=_rate_in(message, "window"),
        weight=field_or_none(message, "weight"),
        updated_at=updated_at,
    )


def _fill(message: Message, limit: Limit) -> None:
    """Copy the optional parts of ``limit`` onto ``message``."""
    if limit.concurrency is not None:
        message.concurrency = limit.concurrency
    if limit.burst is not None:
        message.burst = limit.burst
    if limit.weight is not None:
        message.weight = limit.weight
    if limit.rate is not None:
        message.rate.CopyFrom(fpb.Rate(count=limit.rate.count, per=limit.rate.per))
    if limit.window is not None:
        message.window.CopyFrom(fpb.Rate(count=limit.window.count, per=limit.window.per))


def _rate_in(message: Message, name: str) -> Rate | None:
    if not message.HasField(name):
        return None
    rate: fpb.Rate = getattr(message, name)
    return Rate(rate.count, rate.per)
