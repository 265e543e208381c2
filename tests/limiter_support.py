"""The Limiter conformance suite over the limiter a plugin serves at a URL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Limiter
from atp.core.settings import Settings
from atp.sdk.conformance import LimiterConformance

__all__ = ["UrlLimiterConformance", "make_limiter"]


def make_limiter(plugins: PluginManager, url: str, settings: Settings, clock: Clock) -> Limiter:
    limiter = plugins.hook.atp_make_limiter(url=url, settings=settings, clock=clock)
    assert isinstance(limiter, Limiter), f"no plugin serves a limiter for {url}"
    return limiter


class UrlLimiterConformance(LimiterConformance):
    """The subclass gives ``url``; ``other`` is a second limiter there, with connections
    of its own, so shared buckets are checked across clients."""

    @pytest.fixture
    async def limiter(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[Limiter]:
        built = make_limiter(plugin_manager, url, settings, clock)
        yield built
        await built.close()

    @pytest.fixture
    async def other(
        self, plugin_manager: PluginManager, settings: Settings, clock: Clock, url: str
    ) -> AsyncIterator[Limiter]:
        built = make_limiter(plugin_manager, url, settings, clock)
        yield built
        await built.close()
