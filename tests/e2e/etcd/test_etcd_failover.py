"""``atp scheduler`` processes elected through a three-member etcd cluster.

Two schedulers share a SQLite store file and a shared transport (NATS, else Redis), and
each talks first to an etcd member of its own "node". The leader's member, which is also
etcd's raft leader, is stopped: the leader fails over to another member and keeps its
lease and token. Then the leader's process dies too: the other scheduler takes over with
a larger fencing token, which the store records on its next fenced write, and forwards a
delayed task published after the takeover. Every wait polls etcd or the store, bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from atp.core.clock import SystemClock
from atp.core.errors import BackendUnavailable
from atp.core.model import State
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Lease
from atp.core.settings import Settings
from atp.plugins.etcd._url import parse_url
from atp.plugins.etcd.coordinator import EtcdCoordinator
from atp.sdk.client import Client
from tests.services import EtcdCluster, give_up

pytestmark = pytest.mark.e2e

T = TypeVar("T")
LEADER_TTL = 3.0
SHORT = {
    "ATP_LEADER_TTL": str(LEADER_TTL),
    "ATP_FORWARD_INTERVAL": "0.2",
    "ATP_REAP_INTERVAL": "0.5",
    "ATP_DRAIN_TIMEOUT": "5",
}


class SchedulerProcess:
    """One ``atp scheduler`` with its log in a file, killed at the end of the test at the latest."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.log = log
        command = [sys.executable, "-m", "atp.adapters.cli", "scheduler"]
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                command, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def leads(self, lease: Lease | None) -> bool:
        """Whether ``lease`` is held by this process (owner names are host:pid:random)."""
        return lease is not None and lease.owner.split(":")[1] == str(self.pid)

    def check_alive(self) -> None:
        if self._proc.poll() is not None:
            pytest.fail(f"atp scheduler exited with {self._proc.returncode}:\n{self.output()}")

    def stop(self, signum: int, timeout: float = 15.0) -> int:
        self._proc.send_signal(signum)
        return self._proc.wait(timeout)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def transport_url(request: pytest.FixtureRequest) -> str:
    """A transport other processes share: NATS if its plugin is installed, else Redis."""
    schemes = make_plugin_manager().schemes("transport")
    for scheme, fixture in (("nats", "nats_url"), ("redis", "redis_url")):
        if scheme in schemes:
            url: str = request.getfixturevalue(fixture)
            return url
    give_up("atp scheduler needs a shared transport: no nats:// or redis:// plugin", os.environ)


@pytest.fixture
def start(tmp_path: Path, transport_url: str) -> Iterator[Callable[[str, str], SchedulerProcess]]:
    """Start ``atp scheduler`` NAME with coordinator URL; all share one store file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    started: list[SchedulerProcess] = []

    def make(name: str, coordinator: str) -> SchedulerProcess:
        env = {
            **clean,
            **SHORT,
            "ATP_COORDINATOR": coordinator,
            "ATP_TRANSPORT": transport_url,
            "ATP_STORE": f"sqlite:///{tmp_path / 'atp.db'}",
        }
        started.append(SchedulerProcess(tmp_path / f"{name}.log", env))
        return started[-1]

    yield make
    for process in started:
        process.kill()


async def until(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


def store_fence(db: Path) -> int:
    """The highest leader token the store has accepted for the scheduler's writes."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT token FROM fences WHERE name = 'scheduler'").fetchone()
    except sqlite3.OperationalError:  # the schedulers have not created the file or schema yet
        return 0
    return int(row[0]) if row else 0


async def test_the_standby_takes_over_with_a_larger_token_when_the_leaders_node_fails(
    etcd_cluster: EtcdCluster,
    start: Callable[[str, str], SchedulerProcess],
    transport_url: str,
    tmp_path: Path,
) -> None:
    # Three nodes: the leader's node runs etcd's raft leader too, the hardest member to lose.
    lead_node = etcd_cluster.leader()
    standby_node, spare_node = (i for i in range(3) if i != lead_node)
    observer = EtcdCoordinator(
        parse_url(etcd_cluster.url_of(standby_node, spare_node)), SystemClock()
    )
    try:
        first = start("first", etcd_cluster.url_of(lead_node, standby_node, spare_node))
        held = await until(lambda: _held(observer), "a leader", 20)
        assert first.leads(held), held
        second = start("second", etcd_cluster.url_of(standby_node, spare_node, lead_node))
        await until(lambda: _fence_at_least(tmp_path / "atp.db", held.token), "a fenced write", 10)

        # The leader's etcd member stops: the leader moves to another member, keeps leading.
        await asyncio.to_thread(etcd_cluster.members[lead_node].stop)
        deadline = time.monotonic() + 2 * LEADER_TTL
        while time.monotonic() < deadline:  # several renewals through the other members
            still = await _held(observer)
            assert still is None or first.leads(still), f"leadership moved: {still}"
            assert still is None or still.token == held.token
            first.check_alive()
            second.check_alive()
            await asyncio.sleep(0.2)
        after = await until(lambda: _held(observer), "the lease after the member stopped", 10)
        assert first.leads(after), after
        assert after.token == held.token

        # Then its process dies too: the standby takes over, with a larger token.
        first.kill()
        taken = await until(lambda: _led_by(observer, second), "a new leader", 6 * LEADER_TTL)
        assert taken.token > held.token
        db = tmp_path / "atp.db"
        assert await until(lambda: _fence_at_least(db, taken.token), "its token", 10) == taken.token
        await _forwarded_by_the_leader(db, transport_url)

        assert second.stop(signal.SIGTERM) == 0, second.output()
        assert await observer.holder("scheduler") is None  # released on the way out
    finally:
        await observer.close()


async def _forwarded_by_the_leader(db: Path, transport_url: str) -> None:
    """A delayed task published now is moved to READY and handed to the transport."""
    settings = Settings(store=f"sqlite:///{db}", transport=transport_url)
    client = Client.connect(settings=settings)
    try:
        published = await client.publish("etcd.failover", {"after": "takeover"}, delay=0.5)

        async def ready() -> bool:
            return (await client.get(published.id)).state is State.READY

        await until(ready, "the new leader to forward a due task", 10)
    finally:
        await client.close()


async def _held(observer: EtcdCoordinator) -> Lease | None:
    """The leader lease; None also while etcd elects its own leader and cannot answer."""
    try:
        return await observer.holder("scheduler")
    except BackendUnavailable:
        return None


async def _led_by(observer: EtcdCoordinator, process: SchedulerProcess) -> Lease | None:
    process.check_alive()
    lease = await _held(observer)
    return lease if process.leads(lease) else None


async def _fence_at_least(db: Path, token: int) -> int | None:
    fence = await asyncio.to_thread(store_fence, db)
    return fence if fence >= token else None
