"""What a message in the stream holds: the task id alone (ADR 0023); what the consumer makes
of bodies from before that change (whole envelopes) or of bodies naming no task; and what a
fetch that does not wait takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext

from atp.core import codec
from atp.core.clock import SystemClock
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.plugins import PluginManager
from atp.core.ports import Consumer, Delivery
from atp.plugins.nats._link import Link, consumer_name
from atp.plugins.nats.consumer import task_id_of
from atp.plugins.nats.transport import NatsTransport, message_id
from tests.integration.nats._support import SETTINGS, delete_stream, private_url, stored_messages

pytestmark = pytest.mark.integration


@pytest.fixture
async def transport(plugin_manager: PluginManager, nats_url: str) -> AsyncIterator[NatsTransport]:
    url = private_url(nats_url)
    transport = plugin_manager.make_transport(url, SETTINGS, SystemClock())
    assert isinstance(transport, NatsTransport)
    yield transport
    await transport.close()
    await delete_stream(url)


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


def task(subject: str = "jobs.work") -> Task:
    now = time.time()
    return Task(new_id(now), subject, {"n": 1, "text": "x" * 200}, run_at=now)


async def fetch_all(consumer: Consumer, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + 5.0
    while len(got) < count and time.monotonic() < deadline:
        got += await consumer.fetch(count - len(got), 0.5)
    return got


async def test_the_message_body_is_the_task_id_alone(
    transport: NatsTransport, nats_url: str
) -> None:
    sent = task().replace(headers={"traceparent": "00-abc-def-01"}, attempt=2)
    await transport.publish([sent])
    [stored] = await stored_messages(nats_url, transport.config.stream)
    assert stored.data == sent.id.encode()
    assert stored.subject == transport.config.subject("jobs.work")
    assert stored.headers == {"Nats-Msg-Id": message_id(sent)}


async def test_a_delivery_names_the_task_and_its_atp_subject(transport: NatsTransport) -> None:
    consumer = await transport.consume("jobs.>", "workers")
    sent = [task("jobs.work"), task("jobs.other.deep")]
    await transport.publish(sent)
    got = await fetch_all(consumer, 2)
    assert [(d.task_id, d.subject, d.deliveries) for d in got] == [
        (sent[0].id, "jobs.work", 1),
        (sent[1].id, "jobs.other.deep", 1),
    ]
    await consumer.ack(got)


async def test_an_envelope_published_before_ids_is_delivered_by_its_id(
    transport: NatsTransport, js: JetStreamContext
) -> None:
    consumer = await transport.consume("jobs.>", "workers")
    old = task()
    await js.publish(
        transport.config.subject(old.subject),
        codec.encode_task(old),
        headers={"Nats-Msg-Id": message_id(old)},
    )
    new = task()
    await transport.publish([new])
    got = await fetch_all(consumer, 2)
    assert [(d.task_id, d.subject) for d in got] == [(old.id, old.subject), (new.id, new.subject)]
    await consumer.ack(got)


NO_TASK = [b"", b"\xff\xfe", b"{", b"{not json", b'{"id": 5}', b'{"id": ""}', b'{"x": "A"}']


async def test_a_body_naming_no_task_is_terminated_and_the_rest_delivered(
    transport: NatsTransport, js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = await transport.consume("jobs.>", "workers")
    subject = transport.config.subject("jobs.work")
    for body in NO_TASK:
        await js.publish(subject, body)
    good = task()
    await transport.publish([good])
    got = await fetch_all(consumer, 1)
    assert [d.task_id for d in got] == [good.id]
    await consumer.ack(got)
    assert caplog.text.count("names no task id") == len(NO_TASK)
    await until_nothing_pending(js, transport.config.stream, consumer_name("workers", "jobs.>"))
    assert await consumer.fetch(10, SETTINGS.lease + 0.5) == [], "a terminated body came back"


async def until_nothing_pending(js: JetStreamContext, stream: str, name: str) -> None:
    deadline = time.monotonic() + 5.0
    while (await js.consumer_info(stream, name)).num_ack_pending:
        assert time.monotonic() < deadline, "terminated or acked messages still pending"
        await asyncio.sleep(0.05)


async def test_a_fetch_that_does_not_wait_takes_what_the_stream_holds(
    transport: NatsTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = await transport.consume("jobs.>", "workers")
    sent = [task() for _ in range(5)]
    await transport.publish(sent)
    checks: list[str] = []
    check = Link.ensure_consumer

    async def counted(link: Link, name: str, pattern: str, group: str) -> None:
        checks.append(name)
        await check(link, name, pattern, group)

    monkeypatch.setattr(Link, "ensure_consumer", counted)
    got = await consumer.fetch(10, 0.0)
    assert [d.task_id for d in got] == [t.id for t in sent]
    assert await consumer.fetch(10, 0.0) == []
    await consumer.ack(got)
    assert checks == [], "a pull that ended normally made the consumer check itself"


@pytest.mark.parametrize(
    ("body", "task_id"),
    [
        (b"01JABC", "01JABC"),
        (b'{"id": "01JABC", "subject": "a.b"}', "01JABC"),
        *[(body, None) for body in NO_TASK],
    ],
)
def test_task_id_of_a_body(body: bytes, task_id: str | None) -> None:
    assert task_id_of(body) == task_id
