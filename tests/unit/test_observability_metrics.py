"""The Prometheus plugin on a TestPlatform: values after a known sequence, scraped over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from atp.core.errors import ConfigError, Fail, Retry
from atp.core.model import State
from atp.core.settings import Settings
from atp.plugins.prometheus import PrometheusConfig, PrometheusPlugin
from atp.plugins.prometheus._http import MetricsApp
from atp.plugins.prometheus._metrics import SubjectLabels
from atp.sdk import App
from atp.sdk.testing import TestPlatform
from tests.observability_support import free_port, http_get, parse, scrape, value


def sequence_app() -> App:
    app = App("obs")

    @app.task("obs.ok")
    async def ok() -> str:
        return "fine"

    @app.task("obs.flaky")
    async def flaky() -> str:
        from atp.core.context import current_task

        if current_task().attempt == 1:
            raise Retry(delay=1.0, reason="not yet")
        return "second time"

    @app.task("obs.doomed")
    async def doomed() -> None:
        raise Fail("never")

    return app


def metric_settings(port: int, **table: Any) -> Settings:
    return Settings(extra={"prometheus": {"port": port, **table}})


async def run_sequence(tp: TestPlatform) -> None:
    """Two successes, a retry, a dead letter, a cancel, a delayed task and one left waiting."""
    client = tp.client
    for _ in range(2):
        await client.publish("obs.ok")
    await client.publish("obs.flaky")
    await client.publish("obs.doomed")
    await client.publish("obs.ok", delay=5)
    cancelled = await client.publish("obs.ok", delay=3600)
    await client.cancel(cancelled.id)
    await client.publish("obs.later", delay=7200)
    await tp.run_until_idle(max_time=600)


async def test_metric_values_after_a_known_sequence_are_served_on_the_port():
    port = free_port()
    plugin = PrometheusPlugin(CollectorRegistry())
    async with TestPlatform(sequence_app(), metric_settings(port), plugins=[plugin]) as tp:
        await run_sequence(tp)
        samples = await scrape(port)
    ok, flaky, doomed = {"subject": "obs.ok"}, {"subject": "obs.flaky"}, {"subject": "obs.doomed"}
    expected = {
        ("atp_tasks_enqueued_total", "obs.ok"): 4,
        ("atp_tasks_enqueued_total", "obs.flaky"): 1,
        ("atp_tasks_started_total", "obs.ok"): 3,
        ("atp_tasks_started_total", "obs.flaky"): 2,
        ("atp_tasks_succeeded_total", "obs.ok"): 3,
        ("atp_tasks_succeeded_total", "obs.flaky"): 1,
        ("atp_tasks_failed_total", "obs.flaky"): 1,
        ("atp_tasks_retried_total", "obs.flaky"): 1,
        ("atp_tasks_failed_total", "obs.doomed"): 1,
        ("atp_tasks_retried_total", "obs.doomed"): 0,
        ("atp_tasks_dead_total", "obs.doomed"): 1,
        ("atp_tasks_cancelled_total", "obs.ok"): 1,
        ("atp_dead_letters", "obs.doomed"): 1,
    }
    found = {key: value(samples, key[0], subject=key[1]) for key in expected}
    assert found == expected
    assert value(samples, "atp_task_depth", subject="obs.later", state="SCHEDULED") == 1
    assert value(samples, "atp_task_queue_wait_seconds_count", **ok) == 3
    assert value(samples, "atp_task_schedule_lateness_seconds_count", kind="delayed", **ok) == 1
    assert value(samples, "atp_task_schedule_lateness_seconds_count", kind="retry", **flaky) == 1
    assert value(samples, "atp_task_run_duration_seconds_count", outcome="failed", **doomed) == 1
    assert value(samples, "atp_leader", role="scheduler") == 1
    assert value(samples, "atp_worker_in_flight", worker="test-worker-1") == 0


async def test_cron_workflow_and_leader_hooks_move_their_metrics():
    port = free_port()
    plugin = PrometheusPlugin(CollectorRegistry())
    async with TestPlatform(App(), metric_settings(port), plugins=[plugin]) as tp:
        emit, now = tp.platform.emit, tp.clock.now()
        (task,) = [(await tp.client.publish("obs.cron", delay=60))]
        record = await tp.get(task.id)
        emit("atp_cron_fired", schedule="nightly", tick=now - 2.0, task=record.task)
        emit("atp_workflow_run_started", run_id="r1", workflow="billing")
        emit("atp_workflow_run_finished", run_id="r1", workflow="billing", state="SUCCEEDED")
        emit("atp_leader_lost", role="scheduler", owner="x")
        samples = await scrape(port)
    assert value(samples, "atp_cron_firings_total", schedule="nightly") == 1
    assert value(samples, "atp_cron_fire_lateness_seconds_sum", schedule="nightly") == 2.0
    assert value(samples, "atp_workflow_runs_started_total", workflow="billing") == 1
    assert value(samples, "atp_workflow_runs_total", workflow="billing", outcome="SUCCEEDED") == 1
    assert value(samples, "atp_leader", role="scheduler") == 0


async def test_in_flight_counts_a_running_attempt():
    app, release = App(), asyncio.Event()
    port = free_port()

    @app.task("obs.wait")
    async def wait() -> None:
        await release.wait()

    plugin = PrometheusPlugin(CollectorRegistry())
    async with TestPlatform(app, metric_settings(port), plugins=[plugin]) as tp:
        published = await tp.client.publish("obs.wait")
        await tp.advance(0.2)
        during = await scrape(port)
        release.set()
        assert (await tp.wait(published.id)).state is State.SUCCEEDED
        after = await scrape(port)
    assert value(during, "atp_worker_in_flight", worker="test-worker-1") == 1
    assert value(after, "atp_worker_in_flight", worker="test-worker-1") == 0


async def test_the_port_answers_only_get_metrics():
    port = free_port()
    async with TestPlatform(
        App(), metric_settings(port), plugins=[PrometheusPlugin(CollectorRegistry())]
    ):
        assert (await http_get(port, "/"))[0] == 404
        assert (await http_get(port, "/metrics", "POST"))[0] == 405
        status, body = await http_get(port, "/metrics", "HEAD")
    assert (status, body) == (200, b"")


async def test_a_worker_only_process_leaves_the_depth_out_and_port_zero_serves_nothing():
    plugin = PrometheusPlugin(CollectorRegistry())
    settings = metric_settings(0)
    async with TestPlatform(App(), settings, scheduler=False, plugins=[plugin]) as tp:
        await tp.client.publish("obs.later", delay=60)
        assert plugin.server is None
        await plugin.refresh()
        body = await asgi_get(MetricsApp(plugin.registry, plugin.refresh))
    assert b"atp_task_depth" not in body
    assert b"atp_tasks_enqueued_total" in body


async def test_the_server_mount_serves_depth_through_asgi():
    plugin = PrometheusPlugin(CollectorRegistry())
    async with TestPlatform(App(), metric_settings(0), scheduler=False, plugins=[plugin]) as tp:
        await tp.client.publish("obs.later", delay=60)
        ((path, app),) = [
            m
            for batch in tp.platform.plugins.hook.atp_http_mounts(settings=tp.settings)
            for m in batch
        ]
        body = await asgi_get(app)
    assert path == "/metrics"
    samples = parse(body)
    assert value(samples, "atp_task_depth", subject="obs.later", state="SCHEDULED") == 1


async def test_subject_labels_are_bounded():
    labels = SubjectLabels(2)
    assert [labels(s) for s in ("a", "b", "c", "a", "d")] == ["a", "b", "_other", "a", "_other"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"port": "x"}, "port must be an integer"),
        ({"port": 70000}, "port must be 0 to 65535"),
        ({"depth": "sometimes"}, "depth must be one of"),
        ({"prot": 1}, "unknown key 'prot'"),
        ({"depth_interval": "soon"}, "prometheus.depth_interval"),
    ],
)
def test_bad_configuration_is_refused_by_name(table: dict[str, Any], message: str):
    with pytest.raises(ConfigError, match=message):
        PrometheusConfig.from_settings(Settings(extra={"prometheus": table}))


async def asgi_get(app: Any) -> bytes:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/metrics"}, receive, send)
    assert sent[0]["status"] == 200
    return b"".join(m.get("body", b"") for m in sent[1:])
