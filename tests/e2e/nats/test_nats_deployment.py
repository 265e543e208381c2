"""The deployment "NATS for transport with any store", as real processes: ``atp worker``
and ``atp scheduler`` on a NATS JetStream transport with the SQLite store (local or etcd
coordinator) or the Redis store, fed through the CLI and the SDK.

Each test uses a stream and subject prefix of its own on the session's NATS server, short
leases, and bounded polls of the store; none waits a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import pytest

from atp.core.model import FINAL_STATES, State
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.sdk.client import Client
from atp.sdk.conformance import unique
from tests.integration.nats._support import delete_stream, private_url
from tests.services import ServerProcess

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
SHORT = {
    "ATP_LEASE": "2",
    "ATP_HEARTBEAT": "0.5",
    "ATP_LEADER_TTL": "2",
    "ATP_READY_TIMEOUT": "5",
    "ATP_REAP_INTERVAL": "0.5",
    "ATP_DRAIN_TIMEOUT": "5",
    "ATP_CONCURRENCY": "8",
    "ATP_MAX_ATTEMPTS": "10",
    "ATP_RETRY_BASE": "0.2",
}


class Process:
    """One ``atp`` process with its log in a file, killed for sure at the end of the test."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "atp.adapters.cli", *args],
                cwd=log.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def check_alive(self) -> None:
        if self._proc.poll() is not None:
            pytest.fail(
                f"{self.log.name} exited with {self._proc.returncode}:\n"
                f"{self.log.read_text()[-3000:]}"
            )

    def signal(self, signum: int) -> None:
        self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self._proc.wait(timeout)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)


@pytest.fixture(params=["shared"])
def nats_server(request: pytest.FixtureRequest) -> ServerProcess | None:
    """A NATS server of the test's own ("private": it may restart it), or None: the
    session's server."""
    if request.param == "private":
        start: Callable[..., ServerProcess] = request.getfixturevalue("private_server")
        return start("nats")
    return None


@pytest.fixture
async def transport_url(
    request: pytest.FixtureRequest, nats_server: ServerProcess | None
) -> AsyncIterator[str]:
    url = private_url(nats_server.url if nats_server else request.getfixturevalue("nats_url"))
    yield url
    await delete_stream(url)


@pytest.fixture(params=["sqlite+local"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The store and coordinator beside NATS: SQLite with the local coordinator (the
    default), SQLite with etcd, or everything else on Redis."""
    name = unique("e2e")
    if request.param == "redis":
        return {"ATP_STORE": f"{request.getfixturevalue('redis_url')}?prefix={name}"}
    sqlite = {"ATP_STORE": f"sqlite:///{tmp_path / 'atp.db'}"}
    if request.param == "sqlite+etcd":
        return {**sqlite, "ATP_COORDINATOR": f"{request.getfixturevalue('etcd_url')}?prefix={name}"}
    return sqlite


@pytest.fixture
def env(tmp_path: Path, transport_url: str, deployment: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    return {
        **clean,
        **SHORT,
        **deployment,
        "ATP_TRANSPORT": transport_url,
        "ATP_E2E_LEDGER": str(tmp_path / "ledger.txt"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), clean.get("PYTHONPATH")])),
    }


@pytest.fixture
def start(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def run(name: str, *args: str) -> Process:
        started.append(Process(env, tmp_path / f"{name}.log", *args))
        return started[-1]

    yield run
    for process in started:
        process.kill()


@pytest.fixture
async def client(env: dict[str, str]) -> AsyncIterator[Client]:
    settings = Settings.load(env={k: v for k, v in env.items() if k.startswith("ATP_")})
    async with Platform.build(settings) as platform:
        yield Client(platform)


async def eventually(
    check: Callable[[], Awaitable[object]], timeout: float, what: str, *alive: Process
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        for process in alive:
            process.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {timeout}s")
        await asyncio.sleep(0.1)


def ledger(env: dict[str, str]) -> Counter[int]:
    path = Path(env["ATP_E2E_LEDGER"])
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines())


async def states(client: Client) -> Counter[State]:
    found: Counter[State] = Counter()
    for (_, state), count in (await client.counts()).items():
        found[state] += count
    return found


async def all_final(client: Client, total: int) -> bool:
    found = await states(client)
    return sum(found.values()) == total and set(found) <= FINAL_STATES


async def cli(env: dict[str, str], *args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "atp.adapters.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"atp {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.mark.parametrize("deployment", ["sqlite+local", "sqlite+etcd", "redis"], indirect=True)
async def test_worker_and_scheduler_on_nats_with_any_store(
    env: dict[str, str], start: Callable[..., Process], client: Client
) -> None:
    scheduler = start("scheduler", "scheduler")
    worker = start("worker", "worker", "nats_app:app")
    from_cli = await cli(env, "publish", "e2e.work", '{"n": 0}')
    now = [Client.request("e2e.work", {"n": n}) for n in range(1, 200)]
    later = [Client.request("e2e.work", {"n": n}, delay=1.5) for n in range(200, 250)]
    flaky = [Client.request("e2e.flaky", {"n": n}) for n in range(250, 260)]
    for batch in (now, later, flaky):
        await client.publish_many(batch)
    await eventually(lambda: all_final(client, 260), 60, "all 260 tasks final", scheduler, worker)
    assert await states(client) == Counter({State.SUCCEEDED: 260})
    assert (await client.get(from_cli)).state is State.SUCCEEDED
    assert ledger(env) == Counter(range(260)), "a task ran twice or never"
    for process in (worker, scheduler):
        process.signal(signal.SIGTERM)
        assert process.wait(15) == 0


async def test_a_worker_killed_holding_messages_loses_none(
    env: dict[str, str], start: Callable[..., Process], client: Client
) -> None:
    scheduler = start("scheduler", "scheduler")
    first = start("first", "worker", "nats_app:app")
    await client.publish_many(Client.request("e2e.work", {"n": n, "pause": 1.0}) for n in range(60))

    async def busy() -> bool:
        return (await states(client))[State.RUNNING] >= 4 and sum(ledger(env).values()) >= 4

    await eventually(busy, 60, "the first worker runs tasks", scheduler, first)
    held = await unacked(env["ATP_TRANSPORT"])
    first.signal(signal.SIGKILL)
    first.wait(10)
    assert held > 0, "the worker held no message when it was killed: the test proves nothing"
    second = start("second", "worker", "nats_app:app")
    await eventually(lambda: all_final(client, 60), 90, "all 60 tasks final", scheduler, second)
    assert await states(client) == Counter({State.SUCCEEDED: 60})
    runs = ledger(env)
    assert sorted(runs) == list(range(60)), "some task never ran"
    print(f"\n{held} deliveries held at SIGKILL; {sum(runs.values()) - 60} ran twice")


async def unacked(url: str) -> int:
    """Deliveries the stream's consumers hold unacked right now."""
    server, _, query = url.partition("?")
    stream = dict(part.split("=") for part in query.split("&"))["stream"]
    nc = await nats.connect(server)
    try:
        return sum(c.num_ack_pending for c in await nc.jetstream().consumers_info(stream))
    finally:
        await nc.close()


@pytest.mark.parametrize("nats_server", ["private"], indirect=True)
async def test_a_nats_restart_under_running_processes_loses_nothing(
    env: dict[str, str],
    start: Callable[..., Process],
    client: Client,
    nats_server: ServerProcess | None,
) -> None:
    assert nats_server is not None
    scheduler = start("scheduler", "scheduler")
    worker = start("worker", "worker", "nats_app:app")
    await client.publish_many(
        Client.request("e2e.work", {"n": n, "pause": 0.2}) for n in range(100)
    )

    async def some_ran() -> bool:
        return sum(ledger(env).values()) >= 20

    await eventually(some_ran, 60, "20 tasks ran before the restart", scheduler, worker)
    await asyncio.to_thread(nats_server.restart)
    left = 100 - sum(1 for n in ledger(env) if n < 100)
    assert left > 0, "every task ran before the restart: the test proves nothing"
    await client.publish_many(Client.request("e2e.work", {"n": n}) for n in range(100, 150))
    await eventually(lambda: all_final(client, 150), 90, "all 150 tasks final", scheduler, worker)
    assert await states(client) == Counter({State.SUCCEEDED: 150})
    assert sorted(ledger(env)) == list(range(150)), "some task never ran"
    for process in (worker, scheduler):
        process.signal(signal.SIGTERM)
        assert process.wait(15) == 0
