"""What bounds /metrics: at most ``max_subjects`` subject label values plus ``_other``,
however many subjects come, and the bearer token both endpoints then require."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from atp.core.errors import ConfigError
from atp.core.model import Task
from atp.core.settings import Settings
from atp.plugins.prometheus import MetricsApp, PrometheusConfig, PrometheusPlugin
from atp.sdk import App, Client
from atp.sdk.testing import TestPlatform
from tests.observability_support import Samples, free_port, parse

TOKEN = "s3cret-metrics-token"
DEFAULT_CAP = PrometheusConfig().max_subjects


def by_subject(samples: Samples, name: str | None = None) -> dict[str, float]:
    """The subject label values of the samples (of ``name`` if given), each with the value
    of its last sample."""
    found: dict[str, float] = {}
    for (sample, labels), value in samples.items():
        subject = dict(labels).get("subject")
        if subject is not None and name in (None, sample):
            found[subject] = value
    return found


def fed(subjects: list[str]) -> bytes:
    """The exposition of a fresh plugin told of one enqueued and one started task per
    subject (so counters and histograms both have series)."""
    plugin = PrometheusPlugin(CollectorRegistry())
    tasks = [Task(f"id-{n}", subject) for n, subject in enumerate(subjects)]
    plugin.atp_task_enqueued(tasks)
    for task in tasks:
        plugin._started(task)
    return generate_latest(plugin.registry)


def test_3000_subjects_give_at_most_max_subjects_plus_one_label_values():
    many = fed([f"tenant-{n:04}.work" for n in range(3000)])
    one = fed(["tenant-0000.work"])
    samples = parse(many)
    assert len(by_subject(samples)) == DEFAULT_CAP + 1
    assert len(many) <= (DEFAULT_CAP + 1) * len(one), "the body grows with the cap, not the load"
    enqueued = by_subject(samples, "atp_tasks_enqueued_total")
    assert enqueued["_other"] == 3000 - DEFAULT_CAP, "the rest are counted, under _other"


async def test_depth_gauges_of_3000_subjects_in_the_store_are_bounded_too():
    plugin = PrometheusPlugin(CollectorRegistry())
    settings = Settings(extra={"prometheus": {"port": 0, "depth": "on", "max_subjects": 10}})
    async with TestPlatform(App(), settings, workers=0, plugins=[plugin]) as tp:
        requests = [Client.request(f"s{n}.x", delay=60) for n in range(3000)]
        await tp.client.publish_many(requests)
        await plugin.refresh()
        body = await asgi(MetricsApp(plugin.registry, plugin.refresh))
    assert len(by_subject(parse(body[1]))) == 11
    depth = [v for (name, _), v in parse(body[1]).items() if name == "atp_task_depth"]
    assert sum(depth) == 3000, "every task is still counted"


async def test_the_port_wants_the_token_when_one_is_set():
    port = free_port()
    plugin = PrometheusPlugin(CollectorRegistry())
    settings = Settings(extra={"prometheus": {"port": port, "token": TOKEN}})
    async with TestPlatform(App(), settings, plugins=[plugin]):
        missing = await get(port)
        wrong = await get(port, "Bearer not-the-token-at-all")
        basic = await get(port, f"Basic {TOKEN}")
        right = await get(port, f"Bearer {TOKEN}")
        lower = await get(port, f"bearer {TOKEN}", "HEAD")
    for refused in (missing, wrong, basic):
        assert refused[0] == 401
        assert b"www-authenticate: bearer" in refused[1].lower()
    assert right[0] == 200
    assert b"atp_tasks_enqueued" in right[2]
    assert (lower[0], lower[2]) == (200, b"")


async def test_the_server_mount_wants_the_token_when_one_is_set():
    plugin = PrometheusPlugin(CollectorRegistry())
    settings = Settings(extra={"prometheus": {"port": 0, "token": TOKEN}})
    async with TestPlatform(App(), settings, workers=0, plugins=[plugin]) as tp:
        ((_, app),) = [
            m for b in tp.platform.plugins.hook.atp_http_mounts(settings=tp.settings) for m in b
        ]
        refused = await asgi(app)
        served = await asgi(app, f"Bearer {TOKEN}")
    assert refused[0] == 401
    assert served[0] == 200
    assert b"atp_tasks_enqueued" in served[1]


async def test_without_a_token_the_endpoints_stay_open():
    assert (await asgi(MetricsApp(CollectorRegistry(), _nothing)))[0] == 200


@pytest.mark.parametrize(
    "token", ["short", "has a space in the middle", 12345678901234567, "tab\tinside-the-token"]
)
def test_a_weak_or_malformed_token_is_refused_without_echoing_it(token: Any):
    with pytest.raises(ConfigError, match="token must be") as caught:
        PrometheusConfig.from_settings(Settings(extra={"prometheus": {"token": token}}))
    assert str(token) not in str(caught.value)


def test_the_token_is_kept_out_of_the_configs_repr():
    config = PrometheusConfig.from_settings(Settings(extra={"prometheus": {"token": TOKEN}}))
    assert config.token == TOKEN
    assert TOKEN not in repr(config)


async def _nothing() -> None:
    return None


async def get(
    port: int, authorization: str | None = None, method: str = "GET"
) -> tuple[int, bytes, bytes]:
    """One request to /metrics over a real socket: (status, head, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    writer.write(
        f"{method} /metrics HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head, body


async def asgi(app: Any, authorization: str | None = None) -> tuple[int, bytes]:
    """One GET through an ASGI app: (status, body)."""
    sent: list[dict[str, Any]] = []
    headers = [(b"authorization", authorization.encode())] if authorization else []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(
        {"type": "http", "method": "GET", "path": "/metrics", "headers": headers}, receive, send
    )
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])
