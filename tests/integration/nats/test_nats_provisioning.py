"""Stream and consumer provisioning on a real server: idempotent, updated, or refused clearly."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from atp.core.clock import SystemClock
from atp.core.errors import BackendUnavailable, ConfigError
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.plugins import PluginManager
from atp.core.ports import Transport
from atp.plugins.nats._link import consumer_name
from tests.integration.nats._support import SETTINGS, delete_stream, private_url, stream_of

pytestmark = pytest.mark.integration


@pytest.fixture
async def url(nats_url: str) -> AsyncIterator[str]:
    url = private_url(nats_url)
    yield url
    await delete_stream(url)


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


def make(plugin_manager: PluginManager, url: str) -> Transport:
    return plugin_manager.make_transport(url, SETTINGS, SystemClock())


def task(subject: str = "jobs.a") -> Task:
    now = time.time()
    return Task(new_id(now), subject, run_at=now)


async def test_two_processes_provision_the_same_stream_and_share_a_group(
    plugin_manager: PluginManager, url: str, js: JetStreamContext
) -> None:
    first, second = make(plugin_manager, url), make(plugin_manager, url)
    try:
        one = await first.consume("jobs.*", "workers")
        two = await second.consume("jobs.*", "workers")
        await first.publish([task() for _ in range(6)])
        await second.publish([task() for _ in range(6)])
        got = await one.fetch(8, 2.0) + await two.fetch(8, 2.0)
        got += await one.fetch(8, 0.5) + await two.fetch(8, 0.5)
        assert len({d.task_id for d in got}) == len(got) == 12
        infos = await js.consumers_info(stream_of(url))
        assert [c.name for c in infos] == [consumer_name("workers", "jobs.*")]
        info = await js.stream_info(stream_of(url))
        assert (info.config.retention, info.config.storage) == ("limits", "file")
        assert info.config.subjects == [first.config.prefix + ".>"]  # type: ignore[attr-defined]
    finally:
        await first.close()
        await second.close()


async def test_changed_settings_update_the_stream_and_the_consumer(
    plugin_manager: PluginManager, url: str, js: JetStreamContext
) -> None:
    first = make(plugin_manager, url)
    await first.consume(">", "workers")
    await first.close()
    second = make(plugin_manager, url + "&max_age=2h&ack_wait=3s&max_ack_pending=77")
    try:
        await second.consume(">", "workers")
        stream = await js.stream_info(stream_of(url))
        consumer = await js.consumer_info(stream_of(url), consumer_name("workers", ">"))
        assert stream.config.max_age == 7200
        assert (consumer.config.ack_wait, consumer.config.max_ack_pending) == (3, 77)
    finally:
        await second.close()


async def test_a_stream_of_another_storage_type_is_refused(
    plugin_manager: PluginManager, url: str
) -> None:
    first = make(plugin_manager, url)
    await first.publish([task()])
    await first.close()
    other = make(plugin_manager, url + "&storage=memory")
    with pytest.raises(ConfigError, match=r"storage=file.*cannot change"):
        await other.publish([task()])
    await other.close()


async def test_replicas_a_single_server_cannot_hold_are_refused_with_its_reason(
    plugin_manager: PluginManager, url: str
) -> None:
    transport = make(plugin_manager, url + "&replicas=3")
    with pytest.raises(ConfigError, match=r"refused stream .* replicas=3"):
        await transport.publish([task()])
    await transport.close()


async def test_subjects_held_by_another_stream_are_refused(
    plugin_manager: PluginManager, url: str, js: JetStreamContext
) -> None:
    prefix = url.split("prefix=", 1)[1].split("&", 1)[0]
    await js.add_stream(StreamConfig(name=stream_of(url) + "_OTHER", subjects=[f"{prefix}.>"]))
    transport = make(plugin_manager, url)
    try:
        with pytest.raises(ConfigError, match="refused stream"):
            await transport.consume(">", "workers")
    finally:
        await transport.close()
        await js.delete_stream(stream_of(url) + "_OTHER")


async def test_a_stream_deleted_under_a_running_transport_is_provisioned_again(
    plugin_manager: PluginManager, url: str, js: JetStreamContext
) -> None:
    transport = make(plugin_manager, url)
    try:
        consumer = await transport.consume("jobs.>", "workers")
        await transport.publish([task()])
        await js.delete_stream(stream_of(url))
        with pytest.raises(BackendUnavailable, match="stream does not exist"):
            await transport.publish([task()])
        again = task()
        await transport.publish([again])  # the stream is created afresh
        got = []
        for _ in range(5):
            got += await consumer.fetch(10, 1.0)  # the consumer notices and is recreated
            if again.id in {d.task_id for d in got}:
                break
        assert again.id in {d.task_id for d in got}
    finally:
        await transport.close()
