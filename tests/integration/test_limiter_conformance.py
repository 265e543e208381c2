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


def make_limiter(plugins: PluginManager, url: str, settings: Settings, clock: Clock) -> Limiter:
    limiter = plugins.hook.atp_make_limiter(url=url, settings=settings, clock=clock)
    assert isinstance(limiter, Limiter), f"no plugin serves a limiter for {url}"
    return limiter


class TestMemoryLimiter(LimiterConformance):
    @pytest.fixture
    async def limiter(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock
    ) -> AsyncIterator[Limiter]:
        limiter = make_limiter(plugin_manager, "memory://", settings, clock)
        yield limiter
        await limiter.close()


class TestSqliteLimiter(LimiterConformance):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/limits.db"

    @pytest.fixture
    async def limiter(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[Limiter]:
        limiter = make_limiter(plugin_manager, url, settings, clock)
        yield limiter
        await limiter.close()

    @pytest.fixture
    async def other(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[Limiter]:
        limiter = make_limiter(plugin_manager, url, settings, clock)
        yield limiter
        await limiter.close()
