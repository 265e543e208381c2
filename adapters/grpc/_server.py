"""The gRPC server: atp.v1.Tasks, Consumer, Schedules, Workflows, FlowService and Fleet,
reflection and the health service."""

from __future__ import annotations

import asyncio

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from atp.adapters._api.leases import RemoteLeases
from atp.adapters._api.operations import Operations
from atp.adapters._auth.guard import Guard
from atp.adapters.grpc._fleet import FleetService
from atp.adapters.grpc._flow import FlowService
from atp.adapters.grpc._flow_services import SchedulesService, WorkflowsService
from atp.adapters.grpc._handlers import add_servicer
from atp.adapters.grpc._services import ConsumerService, TasksService
from atp.core.errors import ConfigError
from atp.sdk.wire.pb import (
    consumer_pb2,
    fleet_pb2,
    flow_pb2,
    schedules_pb2,
    tasks_pb2,
    workflows_pb2,
)

__all__ = ["GrpcServer"]

GRACE = 5.0
"""Seconds running calls get to finish once the server stops; streams are cut then."""
TASKS = tasks_pb2.DESCRIPTOR.services_by_name["Tasks"]
CONSUMER = consumer_pb2.DESCRIPTOR.services_by_name["Consumer"]
SCHEDULES = schedules_pb2.DESCRIPTOR.services_by_name["Schedules"]
WORKFLOWS = workflows_pb2.DESCRIPTOR.services_by_name["Workflows"]
FLOW = flow_pb2.DESCRIPTOR.services_by_name["FlowService"]
FLEET = fleet_pb2.DESCRIPTOR.services_by_name["Fleet"]
SERVICES = tuple(s.full_name for s in (TASKS, CONSUMER, SCHEDULES, WORKFLOWS, FLOW, FLEET))


class GrpcServer:
    """Serves the gRPC API on ``host:port`` until told to stop."""

    def __init__(
        self, guard: Guard, operations: Operations, host: str, port: int, max_message: int
    ) -> None:
        self.address = f"{host}:{port}"
        self._health = HealthServicer()
        # A request over max_message (the REST body limit) is refused by grpc with
        # RESOURCE_EXHAUSTED before anything decodes it.
        options = [("grpc.max_receive_message_length", max_message)]
        self._server = aio.server(options=options)
        self._leases = RemoteLeases(operations.platform)
        add_servicer(self._server, TASKS, TasksService(guard, operations))
        add_servicer(self._server, CONSUMER, ConsumerService(guard, self._leases))
        add_servicer(self._server, SCHEDULES, SchedulesService(guard, operations))
        add_servicer(self._server, WORKFLOWS, WorkflowsService(guard, operations))
        add_servicer(self._server, FLOW, FlowService(guard, operations))
        add_servicer(self._server, FLEET, FleetService(guard, operations))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = (
            *SERVICES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, self._server)
        try:
            bound = self._server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise ConfigError(f"gRPC cannot listen on {self.address}: {exc}") from exc
        if bound == 0:
            raise ConfigError(f"gRPC cannot listen on {self.address}")

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then give running calls ``GRACE`` seconds."""
        await self._server.start()
        for name in ("", *SERVICES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        try:
            await stop.wait()
        finally:
            await self._health.enter_graceful_shutdown()
            await self._leases.close()  # Retrieve streams end; their tasks go back
            await self._server.stop(GRACE)
