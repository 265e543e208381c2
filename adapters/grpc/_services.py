"""The servicers of ``atp.v1.Tasks`` and ``atp.v1.Consumer`` over the shared operations.

Every call authenticates its ``authorization`` metadata first, then refuses a request
that could not be decoded; an atp error becomes the status its class maps to, with
``atp-problem-type`` (and ``retry-after``) in the trailers and a bounded detail.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc import aio

from atp.adapters._api.leases import RemoteLeases
from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard, Principal
from atp.adapters.grpc._handlers import parsed
from atp.core.errors import AtpError, IdempotencyConflict, InvalidInput, RateLimited
from atp.core.quoting import cut
from atp.sdk.wire import tasks as convert
from atp.sdk.wire.pb import consumer_pb2 as cpb
from atp.sdk.wire.pb import consumer_pb2_grpc, tasks_pb2_grpc
from atp.sdk.wire.pb import tasks_pb2 as pb
from atp.sdk.wire.problems import PROBLEM_TYPE, retry_after
from atp.sdk.wire.tasks import field_or_none

__all__ = ["ConsumerService", "TasksService"]

log = logging.getLogger("atp.grpc")

DEFAULT_PAGE = 100
MAX_DETAIL = 500
MAX_PROBLEM_DETAILS = 6000
"""Characters of an idempotency conflict's JSON details a trailer carries: a client
receives at most 8 KiB of metadata by default."""
"""Characters of an error's message a status detail keeps: grpc refuses trailers over
16 KiB, and a message may quote what the caller sent."""
R = TypeVar("R")
Ctx = aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Any, Ctx], Awaitable[R]]
Answer = Callable[[Any, Principal, Any], Awaitable[R]]


async def abort(context: Ctx, exc: AtpError) -> None:
    """End the call with the status ``exc`` maps to; raises, as ``context.abort`` does."""
    trailers: list[tuple[str, str]] = [("atp-problem-type", PROBLEM_TYPE + exc.type_slug)]
    if isinstance(exc, RateLimited):
        trailers.append(("retry-after", retry_after(exc)))
    if isinstance(exc, IdempotencyConflict):
        trailers.append(("atp-problem-details", conflict_details(exc)))
    code = getattr(grpc.StatusCode, exc.grpc_code)
    await context.abort(code, cut(exc.message, MAX_DETAIL), trailing_metadata=tuple(trailers))


def conflict_details(exc: IdempotencyConflict) -> str:
    """The conflict's items as JSON; a batch too large for a trailer keeps its first
    conflicts only and says ``"truncated": true`` (the REST answer has them all)."""
    details = exc.details()
    text = json.dumps(details, separators=(",", ":"))
    while len(text) > MAX_PROBLEM_DETAILS and (details["accepted"] or details["conflicts"]):
        details = {
            "conflicts": details["conflicts"][: len(details["conflicts"]) // 2],
            "accepted": [],
            "truncated": True,
        }
        text = json.dumps(details, separators=(",", ":"))
    return text


def guarded(method: Answer[R]) -> Handler[R]:
    """Make ``method(self, who, request)`` a unary gRPC method: authenticate the caller
    from the ``authorization`` metadata, refuse a malformed request, then end the call
    with the status an atp error maps to."""

    @functools.wraps(method)
    async def call(self: _Base, request: Any, context: Ctx) -> R:
        try:
            who = await self._caller(context)
            parsed(request)
            return await method(self, who, request)
        except AtpError as exc:
            await abort(context, exc)
            raise  # unreachable: abort raises

    return call


class _Base:
    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def _caller(self, context: Ctx) -> Principal:
        metadata = dict(context.invocation_metadata() or ())
        value = metadata.get("authorization")
        return await self._guard.admit(value if isinstance(value, str) else None)


class TasksService(_Base, tasks_pb2_grpc.TasksServicer):
    """``atp.v1.Tasks``: the same operations as the REST API."""

    def __init__(self, guard: Guard, operations: Operations) -> None:
        super().__init__(guard)
        self._ops = operations

    @guarded
    async def Publish(self, who: Principal, request: pb.PublishRequest) -> Any:
        (published,) = await self._ops.publish(who, [convert.request_in(request, None)])
        return convert.published_out(published)

    @guarded
    async def PublishBatch(self, who: Principal, request: pb.PublishBatchRequest) -> Any:
        self._ops.check_batch(who, [item.subject for item in request.tasks])  # before decoding
        key = field_or_none(request, "idempotency_key")
        requests = [
            convert.request_in(item, None if key is None else f"{key}:{index}")
            for index, item in enumerate(request.tasks)
        ]
        published = await self._ops.publish(who, requests)
        return pb.PublishBatchResponse(tasks=[convert.published_out(p) for p in published])

    @guarded
    async def GetTask(self, who: Principal, request: pb.TaskId) -> Any:
        return convert.record_out(await self._ops.get(who, convert.id_in(request.id)))

    @guarded
    async def CancelTask(self, who: Principal, request: pb.TaskId) -> Any:
        return convert.record_out(await self._ops.cancel(who, convert.id_in(request.id)))

    @guarded
    async def ListTasks(self, who: Principal, request: pb.ListTasksRequest) -> Any:
        page = await self._ops.query(
            who,
            subject=field_or_none(request, "subject"),
            states=convert.states_in(list(request.states)),
            cursor=field_or_none(request, "cursor"),
            limit=request.limit or DEFAULT_PAGE,
            created_after=field_or_none(request, "created_after"),
            created_before=field_or_none(request, "created_before"),
            idempotency_key=field_or_none(request, "idempotency_key"),
        )
        return convert.page_out(page)

    @guarded
    async def Counts(self, who: Principal, request: pb.CountsRequest) -> Any:
        found = await self._ops.counts(who)
        counts = [
            pb.Count(subject=s, state=str(st), count=n) for (s, st), n in sorted(found.items())
        ]
        return pb.CountsResponse(counts=counts)

    @guarded
    async def ListDeadLetters(self, who: Principal, request: pb.ListDeadLettersRequest) -> Any:
        page = await self._ops.dead_letters(
            who,
            subject=field_or_none(request, "subject"),
            cursor=field_or_none(request, "cursor"),
            limit=request.limit or DEFAULT_PAGE,
        )
        return convert.page_out(page)

    @guarded
    async def GetDeadLetter(self, who: Principal, request: pb.TaskId) -> Any:
        return convert.record_out(await self._ops.dead_letter(who, convert.id_in(request.id)))

    @guarded
    async def Requeue(self, who: Principal, request: pb.RequeueRequest) -> Any:
        replace = request.HasField("payload")
        payload = convert.json_in(request.payload, "payload") if replace else None
        record = await self._ops.requeue(
            who,
            convert.id_in(request.id),
            delay=field_or_none(request, "delay"),
            payload=payload,
            replace_payload=replace,
        )
        return convert.record_out(record)

    @guarded
    async def Purge(self, who: Principal, request: pb.PurgeRequest) -> Any:
        if not request.all and not request.ids:
            raise InvalidInput("name the dead tasks to purge in ids, or set all = true")
        ids = None if request.all else [convert.id_in(i) for i in request.ids]
        purged = await self._ops.purge(who, ids)
        return pb.PurgeResponse(purged=purged)


class ConsumerService(_Base, consumer_pb2_grpc.ConsumerServicer):
    """``atp.v1.Consumer``: Retrieve (server stream), Ack, Nack, Heartbeat."""

    def __init__(self, guard: Guard, leases: RemoteLeases) -> None:
        super().__init__(guard)
        self._leases = leases

    async def Retrieve(
        self, request: cpb.RetrieveRequest, context: Ctx
    ) -> AsyncIterator[cpb.LeasedTask]:
        try:
            who = await self._caller(context)
            parsed(request)
            stream = self._leases.retrieve(
                who,
                request.pattern,
                request.group,
                request.max_in_flight or 1,
                field_or_none(request, "lease"),
            )
            async with contextlib.aclosing(stream) as leased:
                async for item in leased:
                    yield cpb.LeasedTask(
                        task=convert.record_out(item.record),
                        lease_id=item.lease_id,
                        lease_until=item.lease_until,
                    )
        except AtpError as exc:
            await abort(context, exc)

    @guarded
    async def Ack(self, who: Principal, request: cpb.AckRequest) -> Any:
        task_id, lease_id = _lease_ids_in(request.task_id, request.lease_id)
        result = convert.json_in(request.result, "result")
        await self._leases.ack(who, task_id, lease_id, result)
        return cpb.AckResponse()

    @guarded
    async def Nack(self, who: Principal, request: cpb.NackRequest) -> Any:
        task_id, lease_id = _lease_ids_in(request.task_id, request.lease_id)
        state = await self._leases.nack(
            who,
            task_id,
            lease_id,
            delay=field_or_none(request, "delay"),
            error=request.error,
            terminate=request.terminate,
        )
        return cpb.NackResponse(state=str(state))

    @guarded
    async def Heartbeat(self, who: Principal, request: cpb.HeartbeatRequest) -> Any:
        statuses = await self._leases.heartbeat(
            who,
            [convert.id_in(i, "task id") for i in request.task_ids],
            convert.id_in(request.lease_id, "lease id"),
            field_or_none(request, "lease"),
        )
        return cpb.HeartbeatResponse(statuses=[str(s) for s in statuses])


def _lease_ids_in(task_id: str, lease_id: str) -> tuple[str, str]:
    return convert.id_in(task_id, "task id"), convert.id_in(lease_id, "lease id")
