"""The local coordinator's registry: members in the SQLite file, shared by its processes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.core.clock import ManualClock
from atp.core.settings import Settings
from atp.plugins import local as local_plugin
from atp.plugins.local import LocalCoordinator
from atp.plugins.sqlite._schema import VERSION
from atp.sdk.conformance.registry import make_member

START = 1_750_000_000.0


def make(path: Path, clock: ManualClock) -> LocalCoordinator:
    built = local_plugin.atp_make_coordinator(
        url=f"local:///{path}", settings=Settings(), clock=clock
    )
    assert isinstance(built, LocalCoordinator)
    return built


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "atp.db"


@pytest.fixture
async def pair(
    path: Path, clock: ManualClock
) -> AsyncIterator[tuple[LocalCoordinator, LocalCoordinator]]:
    one, two = make(path, clock), make(path, clock)
    yield one, two
    await one.close()
    await two.close()


def rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM members ORDER BY name")]


async def test_two_coordinators_on_one_file_share_the_members(pair, clock):
    one, two = pair
    await one.announce([make_member("w1", "worker", clock.now())], ttl=10)
    await two.announce([make_member("w2", "worker", clock.now())], ttl=10)
    assert [m.name for m in await one.members()] == ["w1", "w2"]
    await two.withdraw(["w1"])
    assert [m.name for m in await one.members("worker")] == ["w2"]


async def test_an_announce_deletes_the_rows_of_expired_members(pair, path, clock):
    one, _ = pair
    await one.announce([make_member("old", "worker", clock.now())], ttl=5)
    await clock.advance(5)
    assert await one.members() == []
    assert rows(path) == ["old"], "reading takes no write lock, so the row stays"
    await one.announce([make_member("new", "worker", clock.now())], ttl=5)
    assert rows(path) == ["new"]


async def test_an_undecodable_row_is_left_out(pair, path, clock):
    one, _ = pair
    members = [make_member(name, "worker", clock.now()) for name in ("a", "b")]
    await one.announce(members, ttl=10)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE members SET body = '{\"name\": 1' WHERE name = 'a'")
    assert [m.name for m in await one.members()] == ["b"]


async def test_a_version_6_file_gains_the_members_table(path, clock):
    coordinator = make(path, clock)
    await coordinator.holder("leader")  # creates the file at the current version
    await coordinator.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE members")
        conn.execute("PRAGMA user_version = 6")
    coordinator = make(path, clock)
    await coordinator.announce([make_member("w", "worker", clock.now())], ttl=10)
    assert [m.name for m in await coordinator.members()] == ["w"]
    await coordinator.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION >= 7
