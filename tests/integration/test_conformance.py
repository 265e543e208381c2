"""The port conformance suites, run over every backend atp ships, built by the plugin manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Coordinator, TaskStore, Transport
from atp.core.settings import Settings
from atp.sdk.conformance import CoordinatorConformance, TaskStoreConformance, TransportConformance


class TestMemoryStore(TaskStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store("memory://", settings, clock)
        yield store
        await store.close()


class TestSqliteStore(TaskStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(f"sqlite:///{tmp_path}/atp.db", settings, clock)
        yield store
        await store.close()


class TestMemoryTransport(TransportConformance):
    @pytest.fixture
    async def transport(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[Transport]:
        transport = plugin_manager.make_transport("memory://", settings, clock)
        yield transport
        await transport.close()


class TestMemoryCoordinator(CoordinatorConformance):
    @pytest.fixture
    async def coordinator(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[Coordinator]:
        coordinator = plugin_manager.make_coordinator("memory://", settings, clock)
        yield coordinator
        await coordinator.close()


class TestLocalCoordinator(CoordinatorConformance):
    @pytest.fixture
    async def coordinator(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[Coordinator]:
        url = f"local:///{tmp_path}/leases.db"
        coordinator = plugin_manager.make_coordinator(url, settings, clock)
        yield coordinator
        await coordinator.close()
