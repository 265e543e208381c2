"""The console on a Redis store: the overview's counts and charts, a filtered task list
and the dead letters come from Redis's counters and indexes, and an action changes it."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from tests.console_support import console

pytestmark = pytest.mark.integration


async def test_the_console_reads_and_acts_on_a_redis_store(url: str) -> None:
    settings = Settings(store=url, transport="memory://", coordinator="memory://")
    async with console(settings=settings) as c:
        service = TaskService(c.platform)
        await c.past_every_id()
        now = c.clock.now()
        orders = await service.publish([PublishRequest("orders.close", {"n": n}) for n in range(3)])
        keyed = PublishRequest("mail.send", {"to": "a"}, idempotency_key="welcome-1")
        (mail,) = await service.publish([keyed])
        await c.login("admin")

        overview = await c.http.get("/console/")
        assert overview.status_code == 200
        assert re.search(r'data-subject="orders.close"', overview.text)
        assert "keeps no activity counts" not in overview.text

        found = await c.http.get(
            "/console/tasks",
            params={"subject": "mail.send", "key": "welcome-1", "created_from": _minute(now - 60)},
        )
        assert found.status_code == 200, found.text
        assert mail.id in found.text
        assert not any(order.id in found.text for order in orders)
        later = await c.http.get("/console/tasks", params={"created_from": _minute(now + 120)})
        assert mail.id not in later.text

        page = await c.http.get(f"/console/tasks/{mail.id}")
        assert page.status_code == 200
        cancelled = await c.post(f"/console/tasks/{mail.id}/cancel")
        assert cancelled.status_code == 303
        assert (await service.get(mail.id)).state.value == "CANCELLED"
        assert (await c.http.get("/console/dead")).status_code == 200


def _minute(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M")
