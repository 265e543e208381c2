"""The Redis store's listing by state on a real Redis: states with few tasks are read from
their own indexes (``RedisStore._few``), others by a walk of the id index; both give the
same pages, newest first, through a cursor, a time range and a subject pattern."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from atp.core.clock import ManualClock
from atp.core.ids import first_id, new_id
from atp.core.model import State, Task
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Outcome, TaskQuery
from atp.core.settings import Settings
from atp.plugins.redis import store as redis_store
from atp.plugins.redis.store import RedisStore
from atp.sdk.conformance._store_support import all_pages
from atp.sdk.conformance._support import make_task

pytestmark = pytest.mark.integration

NOW = 1_750_000_000.0
FATES = (State.SCHEDULED, State.READY, State.RUNNING, State.DEAD, State.SUCCEEDED)


@pytest.fixture
async def store(url: str) -> AsyncIterator[RedisStore]:
    settings = Settings(store=url, transport="memory://")
    built = make_plugin_manager(settings, entry_points=False).make_store(
        url, settings, ManualClock()
    )
    assert isinstance(built, RedisStore)
    yield built
    await built.close()


@pytest.fixture(params=["own indexes", "id walk"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of listing by state: ``_FEW`` 0 makes every state too big for its index."""
    if request.param == "id walk":
        monkeypatch.setattr(redis_store, "_FEW", 0)
    return str(request.param)


async def seeded(store: RedisStore) -> dict[str, State]:
    """30 tasks one second apart over two subjects, in the states of ``FATES`` in turn
    (SCHEDULED due later, READY, RUNNING, DEAD, SUCCEEDED); the state of each by id."""
    tasks = [_stamped(make_task(("a.x", "b.x")[n % 2], NOW + n)) for n in range(30)]
    fates = {t.id: FATES[n % len(FATES)] for n, t in enumerate(tasks)}
    later = [t.replace(run_at=NOW + 3600) for t in tasks if fates[t.id] is State.SCHEDULED]
    now = [t for t in tasks if fates[t.id] is not State.SCHEDULED]
    await store.create(later + now, now=NOW + 30, idempotency_window=60, ready_until=NOW + 300)
    ran = [i for i, fate in fates.items() if fate in (State.RUNNING, State.DEAD, State.SUCCEEDED)]
    await store.claim(ran, owner="w", now=NOW + 30, lease_until=NOW + 600)
    ended = [Outcome(i, "w", fate, NOW + 31) for i, fate in fates.items() if fate in FATES[3:]]
    await store.finish(ended)
    return fates


def _stamped(task: Task) -> Task:
    """``task`` with an id of its creation time: ``new_id`` never goes back in a process."""
    return task.replace(id=first_id(task.created_at)[:10] + new_id(task.created_at)[10:])


def newest(
    fates: dict[str, State], states: set[State], low: str = "", high: str = "~"
) -> list[str]:
    """The ids in ``states`` from ``low`` to below ``high``, newest first."""
    return sorted((i for i, s in fates.items() if s in states and low <= i < high), reverse=True)


@pytest.mark.parametrize(
    "states",
    [{State.RUNNING}, {State.READY, State.SCHEDULED}, {State.DEAD}, {State.SUCCEEDED}],
    ids=lambda states: "+".join(sorted(states)),  # one order in every xdist worker
)
async def test_listing_by_state_pages_newest_first(
    store: RedisStore, way: str, states: set[State]
) -> None:
    fates = await seeded(store)
    query = TaskQuery(states=frozenset(states), limit=2)
    pages = await all_pages(store, query)
    assert [r.id for page in pages for r in page.items] == newest(fates, states)
    assert all(r.state in states for page in pages for r in page.items)


async def test_listing_by_state_keeps_the_range_and_the_subject(
    store: RedisStore, way: str
) -> None:
    fates = await seeded(store)
    states = {State.RUNNING, State.READY}
    low, high = first_id(NOW + 4), first_id(NOW + 25)
    query = TaskQuery(
        subject="a.*",
        states=frozenset(states),
        created_after=NOW + 4,
        created_before=NOW + 25,
        limit=1,
    )
    found = [r for page in await all_pages(store, query) for r in page.items]
    a_x = {r.id for r in await store.get(list(fates)) if r is not None and r.subject == "a.x"}
    assert [r.id for r in found] == [i for i in newest(fates, states, low, high) if i in a_x]
    assert found
