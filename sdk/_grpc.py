"""A Client's connection to ``atp server`` over gRPC, and consuming tasks through it.

``GrpcRemote`` offers the Client's ``Operations``; every message is converted in
``atp.sdk.wire``, the same module the server converts with. Its ``consumer`` lets a
Python worker consume over gRPC: ``retrieve`` yields ``RemoteDelivery`` objects whose
``ack``, ``nack`` and ``heartbeat`` settle the task on the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from grpc import aio

from atp.core import codec
from atp.core.clock import SystemClock
from atp.core.errors import AtpError, BackendUnavailable, IdempotencyConflict
from atp.core.fleet import Fleet
from atp.core.flow.breaker import BreakerState
from atp.core.flow.rules import Limit
from atp.core.flow.service import FlowStatus
from atp.core.model import JSON, State, Task, TaskRecord
from atp.core.ports import Clock, LeaseStatus, Page
from atp.core.schedules import Schedule
from atp.core.service import Published, PublishRequest
from atp.core.workflows.definition import Definition, definition_to_dict
from atp.core.workflows.runs import Run, RunPage, RunState
from atp.sdk._operations import Operations
from atp.sdk.wire import fleet as fleet_wire
from atp.sdk.wire import flows, limits
from atp.sdk.wire import tasks as convert
from atp.sdk.wire.pb import consumer_pb2 as cpb
from atp.sdk.wire.pb import (
    consumer_pb2_grpc,
    fleet_pb2_grpc,
    flow_pb2_grpc,
    schedules_pb2_grpc,
    tasks_pb2_grpc,
    workflows_pb2_grpc,
)
from atp.sdk.wire.pb import fleet_pb2 as fleet_pb
from atp.sdk.wire.pb import flow_pb2 as fpb
from atp.sdk.wire.pb import schedules_pb2 as spb
from atp.sdk.wire.pb import tasks_pb2 as pb
from atp.sdk.wire.pb import workflows_pb2 as wpb
from atp.sdk.wire.problems import error_from

__all__ = ["GrpcConsumer", "GrpcRemote", "RemoteDelivery"]

T = TypeVar("T")
TIMEOUT = 30.0


class GrpcRemote:
    """The gRPC API of one server (``grpc://host:port``), as a Client's ``Operations``."""

    def __init__(
        self,
        target: str,
        token: str | None,
        *,
        clock: Clock | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.target = target
        self.clock = clock or SystemClock()
        self._channel = aio.insecure_channel(target)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self.tasks = GrpcTasks(self)
        self.schedules = GrpcSchedules(self)
        self.workflows = GrpcWorkflows(self)
        self.flow = GrpcFlow(self)
        self.fleet = GrpcFleet(self)
        self.consumer = GrpcConsumer(self)

    def __repr__(self) -> str:
        return f"GrpcRemote({self.target!r})"

    async def close(self) -> None:
        await self._channel.close()

    async def call(self, method: Callable[..., Awaitable[T]], message: Any) -> T:
        """One unary call with this connection's token and timeout; atp errors back."""
        try:
            return await method(message, metadata=self._metadata, timeout=self._timeout)
        except aio.AioRpcError as exc:
            raise _error(exc) from exc


class GrpcTasks:
    """``atp.v1.Tasks``, as ``TaskService`` offers its operations."""

    def __init__(self, remote: GrpcRemote) -> None:
        self._call = remote.call
        self._stub = tasks_pb2_grpc.TasksStub(remote._channel)  # type: ignore[no-untyped-call]

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
        message = pb.PublishBatchRequest(tasks=[convert.request_out(r) for r in requests])
        found = await self._call(self._stub.PublishBatch, message)
        return [convert.published_in(p) for p in found.tasks]

    async def get(self, task_id: str) -> TaskRecord:
        return convert.record_in(await self._call(self._stub.GetTask, pb.TaskId(id=task_id)))

    async def cancel(self, task_id: str) -> TaskRecord:
        return convert.record_in(await self._call(self._stub.CancelTask, pb.TaskId(id=task_id)))

    async def query(
        self,
        *,
        subject: str | None = None,
        states: Sequence[State] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        names = [str(s) for s in states or ()]
        message = pb.ListTasksRequest(subject=subject, states=names, cursor=cursor, limit=limit)
        return convert.page_in(await self._call(self._stub.ListTasks, message))

    async def counts(self) -> dict[tuple[str, State], int]:
        found = await self._call(self._stub.Counts, pb.CountsRequest())
        return {(c.subject, State(c.state)): c.count for c in found.counts}

    async def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page:
        message = pb.ListDeadLettersRequest(subject=subject, cursor=cursor, limit=limit)
        return convert.page_in(await self._call(self._stub.ListDeadLetters, message))

    async def requeue(
        self,
        task_id: str,
        *,
        delay: float | None = None,
        payload: JSON = None,
        replace_payload: bool = False,
    ) -> TaskRecord:
        message = pb.RequeueRequest(id=task_id, delay=delay)
        if replace_payload:
            message.payload = convert.json_out(payload)
        return convert.record_in(await self._call(self._stub.Requeue, message))

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        message = pb.PurgeRequest(ids=list(ids or ()), all=ids is None)
        return int((await self._call(self._stub.Purge, message)).purged)


class GrpcSchedules:
    """``atp.v1.Schedules``, as ``ScheduleService`` offers its operations."""

    def __init__(self, remote: GrpcRemote) -> None:
        self._call = remote.call
        self._stub = schedules_pb2_grpc.SchedulesStub(remote._channel)  # type: ignore[no-untyped-call]

    async def add(self, schedule: Schedule) -> Schedule:
        message = flows.add_schedule_out(schedule)
        return flows.schedule_in(await self._call(self._stub.AddSchedule, message))

    async def get(self, name: str) -> Schedule:
        message = spb.ScheduleName(name=name)
        return flows.schedule_in(await self._call(self._stub.GetSchedule, message))

    async def list(self) -> list[Schedule]:
        found = await self._call(self._stub.ListSchedules, spb.ListSchedulesRequest())
        return [flows.schedule_in(item) for item in found.items]

    async def pause(self, name: str) -> Schedule:
        message = spb.ScheduleName(name=name)
        return flows.schedule_in(await self._call(self._stub.PauseSchedule, message))

    async def resume(self, name: str) -> Schedule:
        message = spb.ScheduleName(name=name)
        return flows.schedule_in(await self._call(self._stub.ResumeSchedule, message))

    async def trigger(self, name: str) -> Published:
        found = await self._call(self._stub.TriggerSchedule, spb.ScheduleName(name=name))
        return convert.published_in(found)

    async def remove(self, name: str) -> None:
        await self._call(self._stub.RemoveSchedule, spb.ScheduleName(name=name))


class GrpcWorkflows:
    """``atp.v1.Workflows``, as ``WorkflowEngine`` offers its operations."""

    def __init__(self, remote: GrpcRemote) -> None:
        self._call = remote.call
        self._stub = workflows_pb2_grpc.WorkflowsStub(remote._channel)  # type: ignore[no-untyped-call]

    async def register(self, definitions: Sequence[Definition]) -> list[bool]:
        """One call per definition, in order: checked here first, so a malformed one
        stores nothing; a later one refused by the server leaves the earlier ones stored."""
        checked = [definition.check() for definition in definitions]
        created = []
        for definition in checked:
            body = codec.dumps(definition_to_dict(definition))
            message = wpb.RegisterWorkflowRequest(definition=body)
            created.append((await self._call(self._stub.RegisterWorkflow, message)).created)
        return created

    async def definition(self, name: str, version: int | None = None) -> Definition:
        message = wpb.GetWorkflowRequest(name=name, version=version)
        return flows.definition_in(await self._call(self._stub.GetWorkflow, message))

    async def definitions(self) -> list[Definition]:
        found = await self._call(self._stub.ListWorkflows, wpb.ListWorkflowsRequest())
        return [flows.definition_in(item) for item in found.items]

    async def start(
        self,
        name: str,
        input: JSON = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> Run:
        data = convert.json_out(input)
        message = wpb.StartRunRequest(workflow=name, input=data, version=version, run_id=run_id)
        return flows.run_in(await self._call(self._stub.StartRun, message))

    async def signal(self, run_id: str, name: str, payload: JSON = None) -> Run:
        data = convert.json_out(payload)
        message = wpb.SignalRunRequest(run_id=run_id, name=name, payload=data)
        return flows.run_in(await self._call(self._stub.SignalRun, message))

    async def get(self, run_id: str) -> Run:
        return flows.run_in(await self._call(self._stub.GetRun, wpb.RunId(id=run_id)))

    async def list(
        self,
        *,
        workflow: str | None = None,
        states: Sequence[RunState | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> RunPage:
        names = [str(s).upper() for s in states or ()]
        message = wpb.ListRunsRequest(workflow=workflow, cursor=cursor, limit=limit, states=names)
        return flows.run_page_in(await self._call(self._stub.ListRuns, message))

    async def cancel(self, run_id: str) -> Run:
        return flows.run_in(await self._call(self._stub.CancelRun, wpb.RunId(id=run_id)))


class GrpcFlow:
    """``atp.v1.FlowService``, as ``FlowService`` offers its operations."""

    def __init__(self, remote: GrpcRemote) -> None:
        self._call = remote.call
        self._stub = flow_pb2_grpc.FlowServiceStub(remote._channel)  # type: ignore[no-untyped-call]

    async def status(self) -> FlowStatus:
        found = await self._call(self._stub.GetLimits, fpb.GetLimitsRequest())
        return limits.status_in(found)

    async def set_limit(self, limit: Limit) -> Limit:
        found = await self._call(self._stub.SetLimit, limits.set_limit_out(limit))
        return limits.limit_in(found)

    async def remove_limit(self, target: str, *, key: bool = False) -> None:
        await self._call(self._stub.RemoveLimit, fpb.LimitTarget(target=target, key=key))

    async def pause(self, pattern: str) -> bool:
        found = await self._call(self._stub.Pause, fpb.PauseRequest(pattern=pattern))
        return bool(found.changed)

    async def resume(self, pattern: str) -> int:
        found = await self._call(self._stub.Resume, fpb.PauseRequest(pattern=pattern))
        return int(found.woken)


class GrpcFleet:
    """``atp.v1.Fleet``, as ``FleetService`` offers its reads."""

    def __init__(self, remote: GrpcRemote) -> None:
        self._call = remote.call
        self._stub = fleet_pb2_grpc.FleetStub(remote._channel)  # type: ignore[no-untyped-call]

    async def workers(self) -> Fleet:
        found = await self._call(self._stub.ListWorkers, fleet_pb.ListWorkersRequest())
        return fleet_wire.fleet_in(found)

    async def breakers(self) -> list[BreakerState]:
        found = await self._call(self._stub.ListBreakers, fleet_pb.ListBreakersRequest())
        return [fleet_wire.breaker_in(item) for item in found.breakers]


class GrpcConsumer:
    """``atp.v1.Consumer``: lease tasks from outside a worker, and settle them."""

    def __init__(self, remote: GrpcRemote) -> None:
        self._remote = remote
        self.call = remote.call
        self.stub = consumer_pb2_grpc.ConsumerStub(remote._channel)  # type: ignore[no-untyped-call]

    async def retrieve(
        self,
        pattern: str,
        *,
        group: str = "default",
        max_in_flight: int = 16,
        lease: float | None = None,
    ) -> AsyncIterator[RemoteDelivery]:
        """Yield tasks leased to this caller, at most ``max_in_flight`` unsettled at once.

        Settle each with ``ack`` or ``nack``; ``heartbeat`` before its lease runs out.
        Closing the iterator ends the stream and gives the unsettled tasks back, each
        with its attempt spent: settle the ones you hold first.
        """
        request = cpb.RetrieveRequest(
            pattern=pattern, group=group, max_in_flight=max_in_flight, lease=lease
        )
        stream = self.stub.Retrieve(request, metadata=self._remote._metadata)
        try:
            async for item in stream:
                record = convert.record_in(item.task)
                yield RemoteDelivery(self, record, item.lease_id, item.lease_until)
        except aio.AioRpcError as exc:
            raise _error(exc) from exc
        finally:
            stream.cancel()


@dataclass(frozen=True, slots=True)
class RemoteDelivery:
    """One task leased to this process over gRPC until ``lease_until``."""

    consumer: GrpcConsumer
    record: TaskRecord
    lease_id: str
    lease_until: float

    @property
    def task(self) -> Task:
        return self.record.task

    async def ack(self, result: JSON = None) -> None:
        """Record success; StateConflict if the lease was lost meanwhile."""
        data = convert.json_out(result)
        message = cpb.AckRequest(task_id=self.task.id, lease_id=self.lease_id, result=data)
        await self.consumer.call(self.consumer.stub.Ack, message)

    async def nack(
        self, error: str, *, delay: float | None = None, terminate: bool = False
    ) -> State:
        """Record a failure: retried after ``delay`` (the backoff if None) or dead."""
        message = cpb.NackRequest(
            task_id=self.task.id,
            lease_id=self.lease_id,
            delay=delay,
            error=error,
            terminate=terminate,
        )
        return State((await self.consumer.call(self.consumer.stub.Nack, message)).state)

    async def heartbeat(self, lease: float | None = None) -> LeaseStatus:
        """Extend the lease; CANCEL_REQUESTED asks this process to stop the task."""
        message = cpb.HeartbeatRequest(task_ids=[self.task.id], lease_id=self.lease_id, lease=lease)
        found = await self.consumer.call(self.consumer.stub.Heartbeat, message)
        return LeaseStatus(found.statuses[0])


def _error(exc: aio.AioRpcError) -> AtpError:
    trailers = dict(exc.trailing_metadata() or ())
    problem = trailers.get("atp-problem-type")
    if not isinstance(problem, str):
        return BackendUnavailable(f"atp server: {exc.code().name}: {exc.details()}")
    retry = trailers.get("retry-after", "1")
    error = error_from(problem, exc.details() or "", float(retry if isinstance(retry, str) else 1))
    if isinstance(error, IdempotencyConflict):  # with the items it names; KeyActive stays one
        return type(error).from_details(error.message, _json(trailers))
    return error


def _json(trailers: dict[str, str | bytes]) -> object:
    """The ``atp-problem-details`` trailer's JSON, or None if absent or malformed."""
    text = trailers.get("atp-problem-details")
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


_: type[Operations] = GrpcRemote
