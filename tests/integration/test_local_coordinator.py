"""The local coordinator: leases in a SQLite file, shared by coordinators and processes."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import BackendUnavailable, ConfigError, InvalidInput
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Coordinator, Lease
from atp.core.settings import Settings
from atp.plugins import local as local_plugin
from atp.plugins.local import LocalCoordinator
from atp.plugins.sqlite import SqliteStore

START = 1_750_000_000.0


def make(url: str, clock: ManualClock) -> LocalCoordinator:
    built = local_plugin.atp_make_coordinator(url=url, settings=Settings(), clock=clock)
    assert isinstance(built, LocalCoordinator)
    return built


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"local:///{tmp_path}/atp.db"


def held(lease: Lease | None) -> Lease:
    assert lease is not None
    return lease


@pytest.fixture
async def pair(
    url: str, clock: ManualClock
) -> AsyncIterator[tuple[LocalCoordinator, LocalCoordinator]]:
    one, two = make(url, clock), make(url, clock)
    yield one, two
    await one.close()
    await two.close()


# -- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bare", ["local://", "local:///", "local://?busy_timeout=10"])
def test_a_url_without_a_file_points_to_memory(bare, clock):
    with pytest.raises(InvalidInput, match=r"memory://") as caught:
        local_plugin.atp_make_coordinator(url=bare, settings=Settings(), clock=clock)
    assert bare in str(caught.value)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("local:///a.db?ttl=5", "unknown option 'ttl'"),
        ("local:///a.db?synchronous=maybe", "'full' or 'normal'"),
        ("local://host/a.db", "no database path"),
    ],
)
def test_malformed_urls_are_refused(url, complaint, clock):
    with pytest.raises(InvalidInput, match=complaint):
        local_plugin.atp_make_coordinator(url=url, settings=Settings(), clock=clock)


def test_the_hook_serves_only_local_urls_and_does_no_io(tmp_path, clock):
    assert (
        local_plugin.atp_make_coordinator(url="memory://", settings=Settings(), clock=clock) is None
    )
    built = make(f"local:///{tmp_path}/leases.db", clock)
    assert isinstance(built, Coordinator)
    assert built.target.path == f"{tmp_path}/leases.db"
    assert not (tmp_path / "leases.db").exists()
    assert local_plugin.atp_url_schemes() == {"coordinator": ["local"]}


async def test_the_default_coordinator_of_a_sqlite_store_is_served(tmp_path, clock):
    settings = Settings(store=f"sqlite:///{tmp_path}/atp.db?synchronous=normal")
    manager = make_plugin_manager(settings, entry_points=False)
    coordinator = manager.make_coordinator(settings.coordinator_url, settings, clock)
    assert isinstance(coordinator, LocalCoordinator)
    assert coordinator.target.synchronous == "normal"
    assert await coordinator.acquire("leader", "me", 10) is not None
    await coordinator.close()


async def test_an_in_memory_sqlite_store_implies_a_private_coordinator(clock):
    settings = Settings(store="sqlite://:memory:")
    coordinator = make(settings.coordinator_url, clock)
    assert held(await coordinator.acquire("leader", "a", ttl=10)).token == 1
    assert await coordinator.acquire("leader", "b", ttl=10) is None
    await coordinator.close()


async def test_a_missing_directory_is_a_config_error(tmp_path, clock):
    coordinator = make(f"local:///{tmp_path}/missing/atp.db", clock)
    with pytest.raises(ConfigError, match="missing"):
        await coordinator.holder("leader")
    await coordinator.close()


# -- leases shared through the file ---------------------------------------------------------------


async def test_two_coordinators_on_one_file_share_a_lease(pair, clock):
    one, two = pair
    lease = held(await one.acquire("leader", "a", ttl=10))
    assert lease == Lease("leader", "a", 1, START + 10)
    assert await two.acquire("leader", "b", ttl=10) is None
    assert await two.holder("leader") == lease

    await clock.advance(5)
    renewed = await one.renew(lease, ttl=10)
    assert renewed == Lease("leader", "a", 1, START + 15)
    await clock.advance(9)
    assert await two.acquire("leader", "b", ttl=10) is None


async def test_an_expired_lease_is_taken_over_with_a_higher_token(pair, clock):
    one, two = pair
    lease = held(await one.acquire("leader", "a", ttl=10))
    await clock.advance(10)
    assert await two.holder("leader") is None
    taken = await two.acquire("leader", "b", ttl=10)
    assert taken == Lease("leader", "b", 2, START + 20)
    assert await one.renew(lease, ttl=10) is None
    await one.release(lease)  # no longer ours: a no-op
    assert await one.holder("leader") == taken
    assert await one.acquire("leader", "a", ttl=10) is None


async def test_tokens_grow_on_every_change_of_holder_and_survive_reopening(url, clock):
    one = make(url, clock)
    first = held(await one.acquire("leader", "a", ttl=10))
    assert held(await one.acquire("leader", "a", ttl=10)).token == first.token == 1
    await one.release(first)
    assert await one.holder("leader") is None
    back = held(await one.acquire("leader", "a", ttl=10))
    assert back.token == 2  # a release ends a tenure, even for the same owner
    await one.close()

    reopened = make(url, clock)
    await clock.advance(11)
    assert held(await reopened.acquire("leader", "b", ttl=10)).token == 3
    assert held(await reopened.acquire("other", "b", ttl=10)).token == 1
    await reopened.close()


async def test_an_owner_keeps_its_token_when_it_reacquires_after_its_own_expiry(pair, clock):
    one, _ = pair
    first = held(await one.acquire("leader", "a", ttl=10))
    await clock.advance(30)
    assert await one.renew(first, ttl=10) is None
    again = await one.acquire("leader", "a", ttl=10)
    assert again == Lease("leader", "a", first.token, START + 40)


async def test_a_release_with_a_stale_token_does_nothing(pair, clock):
    one, two = pair
    old = held(await one.acquire("lock", "a", ttl=10))
    await one.release(old)
    current = await two.acquire("lock", "a", ttl=10)
    await one.release(old)
    assert await two.holder("lock") == current


async def test_coordinators_opening_one_new_file_together_all_answer(tmp_path, clock):
    # The switch of a fresh file to WAL gets no busy wait from SQLite: openers must retry.
    for round_ in range(60):
        url = f"local:///{tmp_path}/fresh-{round_}.db"
        coordinators = [make(url, clock) for _ in range(6)]
        leases = await asyncio.gather(
            *(c.acquire("leader", f"owner-{n}", ttl=10) for n, c in enumerate(coordinators))
        )
        assert len([lease for lease in leases if lease is not None]) == 1
        for coordinator in coordinators:
            await coordinator.close()


async def test_racing_acquires_elect_exactly_one(url, clock):
    coordinators = [make(url, clock) for _ in range(4)]
    leases = await asyncio.gather(
        *(c.acquire("leader", f"owner-{n}", ttl=10) for n, c in enumerate(coordinators))
    )
    assert len([lease for lease in leases if lease is not None]) == 1
    for coordinator in coordinators:
        await coordinator.close()


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from atp.core.clock import ManualClock
    from atp.plugins.local import LocalCoordinator
    from atp.plugins.sqlite._url import parse_url

    async def main(url, start):
        coordinator = LocalCoordinator(parse_url(url, "local"), ManualClock(start=start))
        lease = await coordinator.acquire("leader", "child", ttl=60)
        await coordinator.close()
        print(lease.token if lease else "none", flush=True)

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
    """
)


async def _child_acquire(url: str, start: float) -> str:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, url, str(start), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0
    return output.decode().strip()


async def test_another_process_sees_and_takes_the_lease(url, clock):
    coordinator = make(url, clock)
    lease = held(await coordinator.acquire("leader", "parent", ttl=30))
    assert await _child_acquire(url, START + 10) == "none"
    assert await _child_acquire(url, START + 31) == "2"
    await clock.advance(40)
    holder = await coordinator.holder("leader")
    assert holder == Lease("leader", "child", 2, START + 91)
    assert await coordinator.renew(lease, ttl=30) is None
    await coordinator.close()


# -- the file is the store's too ------------------------------------------------------------


async def test_the_coordinator_and_the_store_share_one_file(tmp_path, clock):
    store = SqliteStore.from_url(f"sqlite:///{tmp_path}/atp.db")
    coordinator = make(f"local:///{tmp_path}/atp.db", clock)
    lease = held(await coordinator.acquire("scheduler", "me", ttl=10))
    assert (
        await store.take_due(now=START, limit=10, ready_until=START + 30, fence=lease.fence) == []
    )
    assert await store.counts() == {}
    with sqlite3.connect(tmp_path / "atp.db") as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert {"tasks", "idempotency_keys", "fences", "leases"} <= tables
    await store.close()
    await coordinator.close()


# -- malformed input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "owner", "ttl", "complaint"),
    [("", "a", 10, "name"), ("x", "", 10, "owner"), ("x", "a", 0, "ttl"), ("x", "a", -1, "ttl")],
)
async def test_malformed_acquires_are_refused(pair, name, owner, ttl, complaint):
    one, _ = pair
    with pytest.raises(InvalidInput, match=complaint):
        await one.acquire(name, owner, ttl)


async def test_a_renew_with_a_bad_ttl_is_refused(pair):
    one, _ = pair
    lease = held(await one.acquire("x", "a", 10))
    with pytest.raises(InvalidInput, match="ttl"):
        await one.renew(lease, ttl=0)


async def test_a_closed_coordinator_refuses_calls(url, clock):
    coordinator = make(url, clock)
    await coordinator.close()
    with pytest.raises(BackendUnavailable):
        await coordinator.holder("leader")
