"""The Transport conformance suite on a real JetStream server, built by the plugin manager.

JetStream keeps its own time (ack wait, nak delays), so the suite runs on a SystemClock
with a two-second lease. Each test gets a stream and subject prefix of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from atp.core.clock import SystemClock
from atp.core.plugins import PluginManager
from atp.core.ports import Clock, Transport
from atp.sdk.conformance import TransportConformance
from tests.integration.nats._support import SETTINGS, delete_stream, private_url

pytestmark = pytest.mark.integration


class TestNatsTransport(TransportConformance):
    @pytest.fixture
    def clock(self) -> Clock:
        return SystemClock()

    @pytest.fixture
    async def transport(
        self, plugin_manager: PluginManager, clock: Clock, nats_url: str
    ) -> AsyncIterator[Transport]:
        url = private_url(nats_url)
        transport = plugin_manager.make_transport(url, SETTINGS, clock)
        yield transport
        await transport.close()
        await delete_stream(url)
