"""The gauges an autoscaler scales on, and the breakers', read from real backends: READY
depth and oldest age per subject and per worker group (the groups from the coordinator's
registry), breaker states from the store's ledger, transitions from the hook (ADR 0044).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from atp.core.clock import ManualClock
from atp.core.flow.breaker import Breaker, breaker_key
from atp.core.model import State
from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.ports import BreakerLedger, Member, Registry, Sample, TaskStore
from atp.core.settings import Settings
from atp.plugins.prometheus import PrometheusConfig, PrometheusPlugin
from atp.plugins.prometheus._depth import (
    BREAKER_STATE,
    GROUP_OLDEST_READY_AGE,
    GROUP_READY_DEPTH,
    OLDEST_READY_AGE,
    TASK_DEPTH,
)
from atp.plugins.prometheus._metrics import BREAKER_TRANSITIONS
from atp.sdk.conformance import unique
from atp.sdk.conformance._support import make_task
from tests.observability_support import Samples, parse, value

pytestmark = pytest.mark.integration

TRIPPING = Breaker(ratio=0.5, window=60, min_volume=2, open_for=30)


@pytest.fixture(params=["memory", "redis"])
async def platform(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[Platform]:
    if request.param == "memory":
        url = "memory://"
    else:
        redis_url = request.getfixturevalue("redis_url")
        url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix={unique('t')}"
    settings = Settings(store=url, transport="memory://", coordinator=url)
    manager = make_plugin_manager(settings, entry_points=False)
    async with Platform.build(settings, plugins=manager, clock=clock) as built:
        yield built


def worker(name: str, group: str, *patterns: str, now: float) -> Member:
    return Member(name, "worker", "host", 1, "test", group, patterns, 8, 0, now, now)


async def ready(store: TaskStore, subject: str, now: float, waited: float) -> None:
    task = make_task(subject, now - waited)
    await store.create([task], now=now, idempotency_window=60, ready_until=now + 30)


async def scrape(plugin: PrometheusPlugin) -> Samples:
    await plugin.refresh()
    return parse(generate_latest(plugin.registry))


def on(platform: Platform) -> PrometheusPlugin:
    plugin = PrometheusPlugin(CollectorRegistry(), PrometheusConfig(depth="on"))
    plugin.atp_platform_built(platform)
    return plugin


async def test_ready_depth_and_oldest_age_per_subject_and_per_group(
    platform: Platform, clock: ManualClock
) -> None:
    store, now = platform.store, clock.now()
    assert isinstance(platform.coordinator, Registry)
    await platform.coordinator.announce(
        [
            worker("w1", "orders", "orders.>", now=now),
            worker("w2", "orders", "refunds.*", now=now),
            worker("w3", "mail", "mail.send", now=now),
        ],
        ttl=60,
    )
    for waited in (30, 10, 0):
        await ready(store, "orders.close", now, waited)
    await ready(store, "refunds.card", now, 45)
    await ready(store, "other.thing", now, 99)
    await store.create(
        [make_task("mail.send", now, run_at=now + 60)], now=now, idempotency_window=60
    )
    samples = await scrape(on(platform))
    assert value(samples, TASK_DEPTH, subject="orders.close", state=str(State.READY)) == 3
    assert value(samples, OLDEST_READY_AGE, subject="orders.close") == 30
    assert value(samples, OLDEST_READY_AGE, subject="other.thing") == 99
    assert (OLDEST_READY_AGE, frozenset({("subject", "mail.send")})) not in samples
    assert value(samples, GROUP_READY_DEPTH, group="orders") == 4
    assert value(samples, GROUP_OLDEST_READY_AGE, group="orders") == 45
    assert (GROUP_READY_DEPTH, frozenset({("group", "mail")})) in samples
    assert value(samples, GROUP_READY_DEPTH, group="mail") == 0
    assert value(samples, GROUP_OLDEST_READY_AGE, group="mail") == 0


async def test_a_reading_is_reused_within_the_interval_then_taken_again(
    platform: Platform, clock: ManualClock
) -> None:
    plugin, now = on(platform), clock.now()
    await ready(platform.store, "orders.close", now, 5)
    first = await scrape(plugin)
    await clock.advance(4)
    await ready(platform.store, "orders.close", clock.now(), 0)
    cached = await scrape(plugin)
    await clock.advance(PrometheusConfig().depth_interval)
    fresh = await scrape(plugin)
    depth = {"subject": "orders.close", "state": str(State.READY)}
    assert [value(s, TASK_DEPTH, **depth) for s in (first, cached, fresh)] == [1, 1, 2]
    assert value(fresh, OLDEST_READY_AGE, subject="orders.close") == 5 + 4 + 10


async def test_a_group_appears_with_its_first_live_worker(
    platform: Platform, clock: ManualClock
) -> None:
    assert isinstance(platform.coordinator, Registry)
    plugin, now = on(platform), clock.now()
    await ready(platform.store, "orders.close", now, 3)
    before = await scrape(plugin)
    await platform.coordinator.announce([worker("w1", "orders", "orders.*", now=now)], ttl=60)
    await clock.advance(PrometheusConfig().depth_interval)
    after = await scrape(plugin)
    assert not [key for key in before if key[0] == GROUP_READY_DEPTH]
    assert value(after, GROUP_READY_DEPTH, group="orders") == 1


async def test_breaker_states_from_the_ledger_and_transitions_from_the_hook(
    platform: Platform, clock: ManualClock
) -> None:
    store, now = platform.store, clock.now()
    assert isinstance(store, BreakerLedger)
    tripped, counting = breaker_key("orders", "orders.close"), breaker_key("mail", "mail.send")
    await store.observe(
        [Sample(tripped, TRIPPING, ok=0, failed=5), Sample(counting, TRIPPING, ok=3, failed=0)],
        now=now,
    )
    plugin = on(platform)
    plugin.atp_breaker_changed("orders", "orders.close", "open", "closed", now)
    plugin.atp_breaker_changed("orders", "orders.close", "half-open", "open", now + 30)
    plugin.atp_breaker_changed("orders", "orders.close", "open", "half-open", now + 31)
    samples = await scrape(plugin)
    assert value(samples, BREAKER_STATE, group="orders", subject="orders.close") == 2
    assert value(samples, BREAKER_STATE, group="mail", subject="mail.send") == 0
    opened = {"group": "orders", "subject": "orders.close", "circuit": "open"}
    half = {**opened, "circuit": "half-open"}
    assert value(samples, BREAKER_TRANSITIONS, **opened) == 2
    assert value(samples, BREAKER_TRANSITIONS, **half) == 1


async def test_group_and_subject_labels_stay_bounded(
    platform: Platform, clock: ManualClock
) -> None:
    assert isinstance(platform.coordinator, Registry)
    now = clock.now()
    plugin = PrometheusPlugin(CollectorRegistry(), PrometheusConfig(depth="on", max_subjects=2))
    plugin.atp_platform_built(platform)
    members = [worker(f"w{i}", f"g{i}", f"s{i}.>", now=now) for i in range(4)]
    await platform.coordinator.announce(members, ttl=60)
    for i, waited in enumerate((1, 2, 7, 3)):
        await ready(platform.store, f"s{i}.x", now, waited)
    samples = await scrape(plugin)
    groups = {dict(labels)["group"] for name, labels in samples if name == GROUP_READY_DEPTH}
    assert len(groups) == 3
    assert "_other" in groups
    assert value(samples, GROUP_READY_DEPTH, group="_other") == 2
    assert value(samples, GROUP_OLDEST_READY_AGE, group="_other") == 7
    ages = {
        dict(labels)["subject"]: v
        for (name, labels), v in samples.items()
        if name == OLDEST_READY_AGE
    }
    assert len(ages) == 3
    assert "_other" in ages
    assert max(ages.values()) == 7
