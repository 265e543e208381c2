"""The port conformance suites over the Redis plugins, built by the plugin manager.

Leases are the server's (key TTLs, stream idle times), so the transport and coordinator
suites run on a SystemClock with short leases. Each test has its own key prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from atp.core.clock import SystemClock
from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Coordinator, Registry, TaskStore, Transport
from atp.core.settings import Settings
from atp.sdk.conformance import (
    ActivityConformance,
    BreakerLedgerConformance,
    CoordinatorConformance,
    FusedConformance,
    RegistryConformance,
    ScheduleStoreConformance,
    TaskStoreConformance,
    TransportConformance,
    WorkflowStoreConformance,
)
from atp.sdk.conformance.flow import FlowLedgerConformance

pytestmark = pytest.mark.integration

LEASE = 1.0


class TestRedisStore(TaskStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(url, settings, clock)
        yield store
        await store.close()


class TestRedisActivity(ActivityConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(url, settings, clock)
        yield store
        await store.close()


class TestRedisFlowLedger(FlowLedgerConformance):
    @pytest.fixture
    async def ledger(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(url, settings, clock)
        yield store
        await store.close()

    async def forget_slot_limit(self, ledger: Any, name: str) -> None:
        assert await ledger._link.call("HDEL", ledger._flow.key("slots"), name) == 1


class TestRedisBreakers(BreakerLedgerConformance):
    @pytest.fixture
    async def ledger(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(url, settings, clock)
        yield store
        await store.close()


class TestRedisSchedules(ScheduleStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(url, settings, clock)
        yield store
        await store.close()


class TestRedisWorkflows(WorkflowStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(url, settings, clock)
        yield store
        await store.close()


class TestRedisTransport(TransportConformance):
    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()

    @pytest.fixture
    async def transport(
        self, plugin_manager: PluginManager, clock: Clock, url: str
    ) -> AsyncIterator[Transport]:
        settings = Settings(lease=LEASE, heartbeat=LEASE / 4)
        transport = plugin_manager.make_transport(url, settings, clock)
        yield transport
        await transport.close()


class TestRedisFused(FusedConformance):
    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()

    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, clock: Clock, url: str
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(url, Settings(lease=LEASE, heartbeat=LEASE / 4), clock)
        yield store
        await store.close()

    @pytest.fixture
    async def transport(
        self, plugin_manager: PluginManager, clock: Clock, url: str
    ) -> AsyncIterator[Transport]:
        settings = Settings(lease=LEASE, heartbeat=LEASE / 4)
        transport = plugin_manager.make_transport(url, settings, clock)
        yield transport
        await transport.close()


class TestRedisCoordinator(CoordinatorConformance):
    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()

    @pytest.fixture
    async def coordinator(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[Coordinator]:
        coordinator = plugin_manager.make_coordinator(url, settings, clock)
        yield coordinator
        await coordinator.close()


class TestRedisRegistry(RegistryConformance):
    """Expiry is the server's TIME: the one expiry test really waits about 1.6 s."""

    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()

    @pytest.fixture
    async def registry(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[Registry]:
        coordinator = plugin_manager.make_coordinator(url, settings, clock)
        assert isinstance(coordinator, Registry)
        yield coordinator
        await coordinator.close()
