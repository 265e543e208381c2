"""The console's overview page: every subject's depth by state from the maintained counts,
the last hour's throughput and failures per minute (the store's ``Activity``), the workers
alive, the scheduler's leader with its fencing token, and the scheduler's lag."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from atp.core.model import AttemptError, State
from atp.core.ports import Member, Outcome, Registry
from atp.core.scheduler.elector import LEADER_LEASE
from atp.core.service import PublishRequest, TaskService
from tests.console_support import MEMORY, Console, console

OWNER = "worker-1"
LEASE = 30.0


class NoActivity:
    """The store as one that keeps no activity counts (and no index of what is due)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in ("activity", "oldest_due"):
            raise AttributeError(name)
        return getattr(self._store, name)


def row(page: str, subject: str) -> dict[str, str]:
    """The cells of ``subject``'s row of the depth table, by their data-state."""
    found = re.search(rf'<tr data-subject="{re.escape(subject)}">(.*?)</tr>', page, re.S)
    assert found, f"no row for {subject}"
    return cells(found.group(1))


def cells(part: str) -> dict[str, str]:
    pairs = re.findall(r'data-state="(\w+)">(.*?)</td>', part, re.S)
    return {key: re.sub(r"<[^>]+>", "", value).strip() for key, value in pairs}


def totals(page: str) -> dict[str, str]:
    found = re.search(r'<tr id="depth-totals">(.*?)</tr>', page, re.S)
    assert found, "no totals row"
    return cells(found.group(1))


def chart(page: str, chart_id: str) -> dict[str, Any]:
    """The data-chart JSON of the figure ``chart_id``."""
    found = re.search(rf'id="{chart_id}".*?data-chart=\'([^\']*)\'', page, re.S)
    assert found, f"no chart {chart_id}"
    spec: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return spec


def per_minute(spec: dict[str, Any], label: str) -> dict[int, int]:
    """The non-zero values of the series ``label``, by minute."""
    [series] = [one for one in spec["series"] if one["label"] == label]
    return {at: n for at, n in zip(spec["x"], series["values"], strict=True) if n}


async def publish(c: Console, subject: str, n: int, **fields: Any) -> list[str]:
    requests = [PublishRequest(subject, {"n": i}, **fields) for i in range(n)]
    return [published.id for published in await TaskService(c.platform).publish(requests)]


async def end(c: Console, task_id: str, state: State) -> None:
    """Run ``task_id`` once, ending in ``state`` now (SCHEDULED: a failure to retry)."""
    store, now = c.platform.store, c.clock.now()
    [claim] = await store.claim([task_id], owner=OWNER, now=now, lease_until=now + LEASE)
    assert claim.claimed
    error = None if state is State.SUCCEEDED else AttemptError(1, now, "boom")
    outcome = Outcome(task_id, OWNER, state, at=now, error=error, run_at=now + 600)
    assert await store.finish([outcome]) == [True]


async def running(c: Console, task_id: str) -> None:
    now = c.clock.now()
    [claim] = await c.platform.store.claim([task_id], owner=OWNER, now=now, lease_until=now + LEASE)
    assert claim.claimed


def worker(name: str, now: float) -> Member:
    return Member(
        name, "worker", "host-a", 7, "0.1.0", "default", ("orders.*",), 4, 1, now - 60, now
    )


async def test_depth_by_state_per_subject_and_in_all():
    async with console() as c:
        await c.login("read")
        orders = await publish(c, "orders.new", 6)
        await publish(c, "orders.new", 2, delay=300)
        mail = await publish(c, "mail.send", 2)
        await running(c, orders[0])
        await end(c, orders[1], State.SUCCEEDED)
        await end(c, orders[2], State.DEAD)
        await end(c, orders[3], State.SCHEDULED)
        await end(c, mail[0], State.DEAD)
        page = (await c.http.get("/console/")).text
    assert row(page, "orders.new") == {
        "SCHEDULED": "3",
        "READY": "2",
        "RUNNING": "1",
        "DEAD": "1",
        "total": "7",
        "succeeded": "1",
        "failed": "2",
    }
    assert row(page, "mail.send") == {
        "SCHEDULED": "0",
        "READY": "1",
        "RUNNING": "0",
        "DEAD": "1",
        "total": "2",
        "succeeded": "0",
        "failed": "1",
    }
    assert totals(page) == {
        "SCHEDULED": "3",
        "READY": "3",
        "RUNNING": "1",
        "DEAD": "2",
        "total": "9",
        "succeeded": "1",
        "failed": "3",
    }
    assert page.index('data-subject="mail.send"') < page.index('data-subject="orders.new"')
    assert re.search(r'data-count="waiting">6<', page)
    assert re.search(r'data-count="dead"><a href="/console/dead">2</a>', page)


async def test_an_empty_store_says_there_are_no_tasks():
    async with console() as c:
        await c.login("read")
        page = (await c.http.get("/console/")).text
    assert 'id="no-tasks"' in page
    assert 'id="depth-table"' not in page


async def test_charts_count_each_minute_of_the_last_hour():
    async with console() as c:
        await c.login("read")
        ids = await publish(c, "orders.new", 5)
        first = c.clock.now()
        await end(c, ids[0], State.SUCCEEDED)
        await end(c, ids[1], State.SUCCEEDED)
        await end(c, ids[2], State.SCHEDULED)
        await c.clock.advance(120)
        await end(c, ids[3], State.SUCCEEDED)
        await end(c, ids[4], State.DEAD)
        page = (await c.http.get("/console/")).text
        now = c.clock.now()
    throughput, failures = chart(page, "chart-throughput"), chart(page, "chart-failures")
    minute = int(first // 60 * 60)
    assert throughput["x"][-1] == int(now // 60 * 60)
    assert throughput["x"][0] == int((now - 3600) // 60 * 60)
    assert per_minute(throughput, "Succeeded") == {minute: 2, minute + 120: 1}
    assert per_minute(failures, "Retried") == {minute: 1}
    assert per_minute(failures, "Dead") == {minute + 120: 1}
    assert '<span data-total="succeeded">3</span>' in page
    assert '<span data-total="retried">1</span>' in page
    assert '<span data-total="dead">1</span>' in page


async def test_activity_older_than_an_hour_leaves_the_charts():
    async with console() as c:
        await c.login("read")
        [task_id] = await publish(c, "orders.new", 1)
        await end(c, task_id, State.SUCCEEDED)
        await c.clock.advance(3600 + 60)
        page = (await c.http.get("/console/")).text
    assert per_minute(chart(page, "chart-throughput"), "Succeeded") == {}
    assert '<span data-total="succeeded">0</span>' in page


async def test_a_store_without_activity_says_so_instead_of_charts():
    async with console() as c:
        await c.login("read")
        await publish(c, "orders.new", 1, delay=10)
        c.platform.store = NoActivity(c.platform.store)  # type: ignore[assignment]
        page = (await c.http.get("/console/")).text
    assert 'id="no-activity"' in page
    assert "data-chart" not in page
    assert "This store keeps no activity counts." in page
    assert row(page, "orders.new")["SCHEDULED"] == "1"


async def test_scheduler_lag_is_the_age_of_the_oldest_due_task():
    async with console() as c:
        await c.login("read")
        none = (await c.http.get("/console/")).text
        await publish(c, "orders.new", 1, delay=10)
        early = (await c.http.get("/console/")).text
        await c.clock.advance(100)
        late = (await c.http.get("/console/")).text
    assert 'data-lag="none"' in none
    assert 'data-lag="0">on time' in early
    assert re.search(r'data-lag="90(\.0)?">1 m 30 s<', late)


async def test_workers_alive_and_the_leader_with_its_fencing_token():
    async with console() as c:
        await c.login("read")
        coordinator = c.platform.coordinator
        assert isinstance(coordinator, Registry)
        now = c.clock.now()
        await coordinator.announce([worker("w1", now), worker("w2", now)], ttl=15)
        lease = await coordinator.acquire(LEADER_LEASE, "sched-a", 10)
        assert lease is not None
        page = (await c.http.get("/console/")).text
        await c.clock.advance(20)
        later = (await c.http.get("/console/")).text
    assert 'data-count="workers"><a href="/console/workers">2</a>' in page
    assert 'data-leader="sched-a"' in page
    assert f'data-token="{lease.token}">{lease.token}<' in page
    assert 'data-count="workers"><a href="/console/workers">0</a>' in later
    assert 'id="no-leader"' in later


async def test_the_live_parts_answer_alone_to_htmx():
    async with console() as c:
        await c.login("read")
        await publish(c, "orders.new", 1)
        hx = {"hx-request": "true"}
        summary = await c.http.get("/console/", headers=hx)
        charts = await c.http.get("/console/?part=charts", headers=hx)
        whole = await c.http.get("/console/?part=charts")
    assert summary.text.startswith('<div id="overview-summary" data-live')
    assert 'data-subject="orders.new"' in summary.text
    assert "<html" not in summary.text
    assert "data-chart" not in summary.text
    assert charts.text.startswith('<div id="overview-charts" data-live')
    assert "<html" not in charts.text
    assert "depth-table" not in charts.text
    for part in ("<html", "depth-table", "data-chart"):
        assert part in whole.text


async def test_an_unknown_part_is_refused():
    async with console() as c:
        await c.login("read")
        response = await c.http.get("/console/?part=everything")
    assert response.status_code == 400
    assert "part" in response.text


async def test_the_page_offers_no_action_and_needs_a_session():
    async with console() as c:
        anonymous = await c.http.get("/console/")
        await c.login("read")
        page = (await c.http.get("/console/")).text
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/console/login")
    forms = re.findall(r'<form method="post" action="([^"]+)"', page)
    assert forms == ["/console/logout"]


async def test_sqlite_keeps_the_counts_and_the_activity(tmp_path):
    path = tmp_path / "atp.db"
    settings = MEMORY.replace(store=f"sqlite:///{path}", coordinator=f"local:///{path}")
    async with console(settings=settings) as c:
        await c.login("read")
        ids = await publish(c, "orders.new", 3)
        await end(c, ids[0], State.SUCCEEDED)
        await end(c, ids[1], State.DEAD)
        page = (await c.http.get("/console/")).text
    minute = int(c.clock.now() // 60 * 60)
    assert row(page, "orders.new") == {
        "SCHEDULED": "0",
        "READY": "1",
        "RUNNING": "0",
        "DEAD": "1",
        "total": "2",
        "succeeded": "1",
        "failed": "1",
    }
    assert per_minute(chart(page, "chart-throughput"), "Succeeded") == {minute: 1}
    assert per_minute(chart(page, "chart-failures"), "Dead") == {minute: 1}
    assert 'data-lag="none"' in page
