"""What a producer's outbox relies on in every store (ADR 0043): a publish with a task id
the store has already is not created again, key or no key, so a try whose answer was lost
can be repeated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.core.ids import new_id
from atp.core.service import PublishRequest
from atp.sdk import Client, Settings
from atp.sdk.conformance import unique

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "redis"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'atp.db'}"
    else:
        url = f"{request.getfixturevalue('redis_url')}?prefix={unique('ids')}"
    client = Client.connect(settings=Settings(store=url, transport="memory://"))
    yield client
    await client.close()


async def test_a_known_task_id_is_not_created_again(client: Client) -> None:
    task_id = new_id(client.platform.clock.now())
    request = PublishRequest("jobs.once", {"n": 1}, task_id=task_id)
    [first] = await client.publish_many([request])
    [again] = await client.publish_many([request])
    keyed = PublishRequest("jobs.once", {"n": 1}, task_id=task_id, idempotency_key=task_id)
    [late] = await client.publish_many([keyed])  # as the outbox delivers it
    assert (first.id, first.created) == (task_id, True)
    assert [(p.id, p.created) for p in (again, late)] == [(task_id, False)] * 2
    page = await client.list(subject="jobs.once")
    assert [r.id for r in page.items] == [task_id]
