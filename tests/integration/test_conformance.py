"""The port conformance suites, run over every backend atp ships, built by the plugin manager."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from atp.core.plugins import PluginManager
from atp.core.ports import (
    BreakerLedger,
    Clock,
    Coordinator,
    FlowLedger,
    Registry,
    ScheduleStore,
    TaskStore,
    Transport,
    WorkflowStore,
)
from atp.core.settings import Settings
from atp.core.subjects import validate_subject
from atp.plugins.sqlite import SqliteStore
from atp.sdk.conformance import (
    ActivityConformance,
    BreakerLedgerConformance,
    CoordinatorConformance,
    FlowLedgerConformance,
    RegistryConformance,
    ScheduleStoreConformance,
    TaskStoreConformance,
    TransportConformance,
    WorkflowStoreConformance,
    unique,
)


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


class TestMemoryActivity(ActivityConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store("memory://", settings, clock)
        yield store
        await store.close()


class TestSqliteActivity(ActivityConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(f"sqlite:///{tmp_path}/atp.db", settings, clock)
        yield store
        await store.close()


class TestSqliteFlowLedger(FlowLedgerConformance):
    @pytest.fixture
    async def ledger(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[SqliteStore]:
        store = plugin_manager.make_store(f"sqlite:///{tmp_path}/atp.db", settings, clock)
        assert isinstance(store, SqliteStore)
        yield store
        await store.close()

    async def forget_slot_limit(self, ledger: Any, name: str) -> None:
        sql = "DELETE FROM flow_slot_limits WHERE slot = ?"
        await ledger._db.write(lambda conn: conn.execute(sql, (name,)))


class TestMemoryFlowLedger(FlowLedgerConformance):
    @pytest.fixture
    async def ledger(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store("memory://", settings, clock)
        assert isinstance(store, FlowLedger)
        yield store
        await store.close()

    async def forget_slot_limit(self, ledger: Any, name: str) -> None:
        del ledger._slot_limits[name]


class TestMemoryBreakers(BreakerLedgerConformance):
    @pytest.fixture
    async def ledger(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store("memory://", settings, clock)
        assert isinstance(store, BreakerLedger)
        yield store
        await store.close()


class TestSqliteBreakers(BreakerLedgerConformance):
    @pytest.fixture
    async def ledger(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[TaskStore]:
        store = plugin_manager.make_store(f"sqlite:///{tmp_path}/atp.db", settings, clock)
        assert isinstance(store, BreakerLedger)
        yield store
        await store.close()


class TestMemorySchedules(ScheduleStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[ScheduleStore]:
        store = plugin_manager.make_store("memory://", settings, clock)
        assert isinstance(store, ScheduleStore)
        yield store
        await store.close()


class TestSqliteSchedules(ScheduleStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[ScheduleStore]:
        store = plugin_manager.make_store(f"sqlite:///{tmp_path}/atp.db", settings, clock)
        assert isinstance(store, ScheduleStore)
        yield store
        await store.close()


class TestMemoryWorkflows(WorkflowStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[WorkflowStore]:
        store = plugin_manager.make_store("memory://", settings, clock)
        assert isinstance(store, WorkflowStore)
        yield store
        await store.close()


class TestSqliteWorkflows(WorkflowStoreConformance):
    @pytest.fixture
    async def store(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[WorkflowStore]:
        store = plugin_manager.make_store(f"sqlite:///{tmp_path}/atp.db", settings, clock)
        assert isinstance(store, WorkflowStore)
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


class TestMemoryRegistry(RegistryConformance):
    @pytest.fixture
    async def registry(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[Registry]:
        coordinator = plugin_manager.make_coordinator("memory://", settings, clock)
        assert isinstance(coordinator, Registry)
        yield coordinator
        await coordinator.close()


class TestLocalRegistry(RegistryConformance):
    @pytest.fixture
    async def registry(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, tmp_path: Path
    ) -> AsyncIterator[Registry]:
        url = f"local:///{tmp_path}/members.db"
        coordinator = plugin_manager.make_coordinator(url, settings, clock)
        assert isinstance(coordinator, Registry)
        yield coordinator
        await coordinator.close()


PLUGIN_AUTHORS_MODULE = """
import pytest
from atp.plugins.memory import MemoryCoordinator
from atp.sdk.conformance import CoordinatorConformance, TaskStoreConformance, TransportConformance

class TestTheirCoordinator(CoordinatorConformance):
    @pytest.fixture
    def coordinator(self, clock):
        return MemoryCoordinator(clock)
"""


def test_only_subclasses_are_collected_and_they_run_in_strict_mode(tmp_path: Path) -> None:
    (tmp_path / "test_theirs.py").write_text(PLUGIN_AUTHORS_MODULE)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=strict",
        "test_theirs.py",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    suite = [name for name in dir(CoordinatorConformance) if name.startswith("test_")]
    passed = [line for line in done.stdout.splitlines() if line.startswith("PASSED")]
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(passed) == len(suite), done.stdout[-3000:]
    assert all("TestTheirCoordinator::" in line for line in passed)


def test_unique_names_are_single_tokens_and_never_repeat() -> None:
    names = {unique("conf") for _ in range(1000)}
    assert len(names) == 1000
    assert all(validate_subject(name) == name and "." not in name for name in names)
    with pytest.raises(ValueError, match="single token"):
        unique("a.b")
