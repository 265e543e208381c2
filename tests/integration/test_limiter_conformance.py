"""The Limiter conformance suite over the in-process and SQLite limiters, built by the
plugin manager (the Redis and etcd ones run in their folders)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Limiter
from atp.core.settings import Settings
from atp.sdk.conformance import LimiterConformance
from tests.limiter_support import UrlLimiterConformance, make_limiter


class TestMemoryLimiter(LimiterConformance):
    @pytest.fixture
    async def limiter(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[Limiter]:
        limiter = make_limiter(plugin_manager, "memory://", settings, clock)
        yield limiter
        await limiter.close()


class TestSqliteLimiter(UrlLimiterConformance):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/limits.db"
