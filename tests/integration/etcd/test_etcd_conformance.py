"""The Coordinator and Registry conformance suites on a real etcd, built through the plugin
manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from atp.core.clock import SystemClock
from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Coordinator, Registry
from atp.core.settings import Settings
from atp.sdk.conformance import CoordinatorConformance, RegistryConformance, unique

pytestmark = pytest.mark.integration


class TestEtcdCoordinator(CoordinatorConformance):
    expiry_ttl: ClassVar[float] = 2.0
    """etcd's smallest lease TTL with its default election timeout. etcd deletes the key
    within 0.5 s of expiry; the suite waits 1.5 x this long."""

    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()

    @pytest.fixture
    async def coordinator(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, etcd_url: str
    ) -> AsyncIterator[Coordinator]:
        url = f"{etcd_url}?prefix={unique('conformance')}"
        coordinator = plugin_manager.make_coordinator(url, settings, clock)
        yield coordinator
        await coordinator.close()


class TestEtcdRegistry(RegistryConformance):
    expiry_ttl: ClassVar[float] = 2.0
    """etcd's smallest lease TTL, as for the leases."""
    expiry_slack: ClassVar[float] = 1.0
    """etcd deletes a lease's keys within about 0.5 s of its expiry."""

    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()

    @pytest.fixture
    async def registry(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, etcd_url: str
    ) -> AsyncIterator[Registry]:
        url = f"{etcd_url}?prefix={unique('registry')}"
        coordinator = plugin_manager.make_coordinator(url, settings, clock)
        assert isinstance(coordinator, Registry)
        yield coordinator
        await coordinator.close()
