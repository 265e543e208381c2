"""The servicers of ``atp.v1.Tasks`` and ``atp.v1.Consumer`` over the shared operations.

Every call authenticates its ``authorization`` metadata first; an atp error becomes the
status its class maps to, with ``atp-problem-type`` (and ``retry-after``) in the trailers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc import aio

from atp.adapters._api.leases import RemoteLeases
from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard, Principal
from atp.core.errors import AtpError, InvalidInput, RateLimited
from atp.sdk.wire import tasks as convert
from atp.sdk.wire.pb import consumer_pb2 as cpb
from atp.sdk.wire.pb import consumer_pb2_grpc, tasks_pb2_grpc
from atp.sdk.wire.pb import tasks_pb2 as pb

__all__ = ["ConsumerService", "TasksService"]

log = logging.getLogger("atp.grpc")

PROBLEM_TYPE = "urn:atp:problem:"
DEFAULT_PAGE = 100
R = TypeVar("R")
Ctx = aio.ServicerContext[Any, Any]
Handler = Callable[..., Awaitable[R]]


async def abort(context: Ctx, exc: AtpError) -> None:
    """End the call with the status ``exc`` maps to; raises, as ``context.abort`` does."""
    trailers: list[tuple[str, str]] = [("atp-problem-type", PROBLEM_TYPE + exc.type_slug)]
    if isinstance(exc, RateLimited):
        trailers.append(("retry-after", str(max(1, math.ceil(min(exc.retry_after, 86400))))))
    code = getattr(grpc.StatusCode, exc.grpc_code)
    await context.abort(code, exc.message, trailing_metadata=tuple(trailers))


def guarded(method: Handler[R]) -> Handler[R]:
    """Translate atp errors of a unary method into statuses; log anything unexpected."""

    @functools.wraps(method)
    async def call(self: Any, request: Any, context: Ctx) -> R:
        try:
            return await method(self, request, context)
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
    async def Publish(self, request: pb.PublishRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        (published,) = await self._ops.publish(who, [convert.request_in(request, None)])
        return convert.published_out(published)

    @guarded
    async def PublishBatch(self, request: pb.PublishBatchRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        key = request.idempotency_key if request.HasField("idempotency_key") else None
        requests = [convert.request_in(item, None if key is None else f"{key}:{index}")
                    for index, item in enumerate(request.tasks)]  # fmt: skip
        published = await self._ops.publish(who, requests)
        return pb.PublishBatchResponse(tasks=[convert.published_out(p) for p in published])

    @guarded
    async def GetTask(self, request: pb.TaskId, context: Ctx) -> Any:
        who = await self._caller(context)
        return convert.record_out(await self._ops.get(who, request.id))

    @guarded
    async def CancelTask(self, request: pb.TaskId, context: Ctx) -> Any:
        who = await self._caller(context)
        return convert.record_out(await self._ops.cancel(who, request.id))

    @guarded
    async def ListTasks(self, request: pb.ListTasksRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        page = await self._ops.query(
            who,
            subject=request.subject if request.HasField("subject") else None,
            states=convert.states_in(list(request.states)),
            cursor=request.cursor if request.HasField("cursor") else None,
            limit=request.limit or DEFAULT_PAGE,
        )
        return convert.page_out(page)

    @guarded
    async def Counts(self, request: pb.CountsRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        found = await self._ops.counts(who)
        return pb.CountsResponse(counts=[pb.Count(subject=s, state=str(st), count=n)
                                         for (s, st), n in sorted(found.items())])  # fmt: skip

    @guarded
    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        page = await self._ops.dead_letters(
            who,
            subject=request.subject if request.HasField("subject") else None,
            cursor=request.cursor if request.HasField("cursor") else None,
            limit=request.limit or DEFAULT_PAGE,
        )
        return convert.page_out(page)

    @guarded
    async def GetDeadLetter(self, request: pb.TaskId, context: Ctx) -> Any:
        who = await self._caller(context)
        return convert.record_out(await self._ops.dead_letter(who, request.id))

    @guarded
    async def Requeue(self, request: pb.RequeueRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        replace = request.HasField("payload")
        payload = convert.json_in(request.payload, "payload") if replace else None
        record = await self._ops.requeue(
            who, request.id, delay=request.delay if request.HasField("delay") else None,
            payload=payload, replace_payload=replace,
        )  # fmt: skip
        return convert.record_out(record)

    @guarded
    async def Purge(self, request: pb.PurgeRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        if not request.all and not request.ids:
            raise InvalidInput("name the dead tasks to purge in ids, or set all = true")
        purged = await self._ops.purge(who, None if request.all else list(request.ids))
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
            stream = self._leases.retrieve(
                who, request.pattern, request.group, request.max_in_flight or 1,
                request.lease if request.HasField("lease") else None,
            )  # fmt: skip
            async with contextlib.aclosing(stream) as leased:
                async for item in leased:
                    yield cpb.LeasedTask(task=convert.record_out(item.record),
                                         lease_id=item.lease_id,
                                         lease_until=item.lease_until)  # fmt: skip
        except AtpError as exc:
            await abort(context, exc)

    @guarded
    async def Ack(self, request: cpb.AckRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        result = convert.json_in(request.result, "result")
        await self._leases.ack(who, request.task_id, request.lease_id, result)
        return cpb.AckResponse()

    @guarded
    async def Nack(self, request: cpb.NackRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        state = await self._leases.nack(
            who, request.task_id, request.lease_id,
            delay=request.delay if request.HasField("delay") else None,
            error=request.error, terminate=request.terminate,
        )  # fmt: skip
        return cpb.NackResponse(state=str(state))

    @guarded
    async def Heartbeat(self, request: cpb.HeartbeatRequest, context: Ctx) -> Any:
        who = await self._caller(context)
        statuses = await self._leases.heartbeat(
            who, list(request.task_ids), request.lease_id,
            request.lease if request.HasField("lease") else None,
        )  # fmt: skip
        return cpb.HeartbeatResponse(statuses=[str(s) for s in statuses])
