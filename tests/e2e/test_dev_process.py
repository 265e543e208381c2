"""``atp dev`` as a real process: SIGKILL loses nothing, the CLI reaches it, one leader.

Each test starts ``python -m atp.adapters.cli dev`` on a SQLite file in a temporary folder
with short leases, and talks to the same file from this process through the SDK Client.
Every wait is bounded and polls the store; none is a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from atp.core.model import FINAL_STATES, State
from atp.core.platform import Platform
from atp.sdk.client import Client

pytestmark = pytest.mark.e2e

T = TypeVar("T")
HERE = Path(__file__).parent
REPO = HERE.parents[1]
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
    "ATP_SERVER__PORT": "0",  # `atp dev` serves its console on a free port
}


class DevProcess:
    """One ``atp dev`` process, its log in a file, stopped for sure at the end of the test."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str) -> None:
        self.log = tmp_path / f"{name}.log"
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, *args: str, cwd: Path | None = None) -> DevProcess:
        """Run ``atp dev ARGS`` (default: the ledger app) in ``cwd`` (default: the log's folder)."""
        command = [sys.executable, "-m", "atp.adapters.cli", "dev", *(args or ["dev_app:app"])]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                command,
                cwd=cwd or self.log.parent,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def check_alive(self) -> None:
        """Fail the test, with the process's log, if it exited."""
        if self._proc is not None and self._proc.poll() is not None:
            pytest.fail(f"atp dev exited with {self._proc.returncode}:\n{self.log.read_text()}")

    def signal(self, signum: int) -> None:
        assert self._proc is not None
        self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"atp dev did not exit within {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of every atp process of a test: short timings, its own files."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    return {
        **clean,
        **SHORT,
        "ATP_STORE": f"sqlite:///{tmp_path / 'atp.db'}",
        "ATP_TRANSPORT": "memory://",
        "ATP_E2E_LEDGER": str(tmp_path / "ledger.txt"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), clean.get("PYTHONPATH")])),
    }


@pytest.fixture
def processes(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[[str], DevProcess]]:
    started: list[DevProcess] = []

    def make(name: str) -> DevProcess:
        started.append(DevProcess(tmp_path, env, name))
        return started[-1]

    yield make
    for process in started:
        process.kill()


@pytest.fixture
def client(platform: Platform) -> Client:
    return Client(platform)


async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float,
    what: str | Callable[[], str],
    *alive: DevProcess,
) -> T:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``.

    ``what`` may be a function, to describe the state the wait ended in.
    """
    deadline = time.monotonic() + timeout
    while True:
        for process in alive:
            process.check_alive()
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            pytest.fail(f"{described}: not reached within {timeout}s (last value {value!r})")
        await asyncio.sleep(0.1)


async def leader_pid(platform: Platform) -> int | None:
    holder = await platform.coordinator.holder("scheduler")
    return int(holder.owner.split(":")[-2]) if holder else None


async def wait_leader(platform: Platform, process: DevProcess) -> None:
    async def leads() -> bool:
        return await leader_pid(platform) == process.pid

    await eventually(leads, 20, f"atp dev (pid {process.pid}) leads the scheduler", process)


async def cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run ``atp ARGS`` as another process; return its stdout, failing on a non-zero exit."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "atp.adapters.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"atp {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def ledger(path: Path) -> Counter[int]:
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines())


async def unfinished(client: Client) -> int:
    counts = await client.counts()
    return sum(n for (_, state), n in counts.items() if state not in FINAL_STATES)


async def test_sigkill_mid_way_loses_nothing(
    platform: Platform, client: Client, processes: Callable[[str], DevProcess], tmp_path: Path
) -> None:
    rng = random.Random(7)
    first = processes("first").start()
    now = [
        Client.request("e2e.work", {"n": n, "pause": rng.uniform(0.05, 0.15)}) for n in range(200)
    ]
    later = [Client.request("e2e.work", {"n": n}, delay=rng.uniform(2, 4)) for n in range(200, 300)]
    for batch in (now[:100], now[100:], later):
        await client.publish_many(batch)
    await wait_leader(platform, first)

    async def some_ran() -> bool:
        return sum(ledger(tmp_path / "ledger.txt").values()) >= 50

    await eventually(some_ran, 30, "50 executions before the kill", first)
    first.signal(signal.SIGKILL)
    first.wait(10)
    left = await unfinished(client)
    assert left > 0, "every task finished before the kill: the test proves nothing"
    await client.publish_many(Client.request("e2e.work", {"n": n}) for n in range(300, 350))

    second = processes("second").start()

    async def all_final() -> bool:
        return await unfinished(client) == 0

    await eventually(all_final, 60, "every task final after the restart", second)
    counts = await client.counts()
    assert {state for _, state in counts} == {State.SUCCEEDED}
    assert sum(counts.values()) == 350
    runs = ledger(tmp_path / "ledger.txt")
    assert sorted(runs) == list(range(350)), "some task never ran"
    duplicates = sum(n - 1 for n in runs.values())
    print(f"\n{left} tasks unfinished at SIGKILL; {duplicates} ran twice or more")

    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0


async def test_a_task_published_by_the_cli_reaches_the_running_dev(
    platform: Platform,
    client: Client,
    processes: Callable[[str], DevProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    dev = processes("dev").start()
    await wait_leader(platform, dev)
    task_id = await cli(env, tmp_path, "publish", "e2e.work", '{"n": 1}')

    async def succeeded() -> bool:
        return (await client.get(task_id)).state is State.SUCCEEDED

    await eventually(succeeded, 10, f"task {task_id} from the CLI SUCCEEDED", dev)
    dev.signal(signal.SIGINT)
    assert dev.wait(15) == 0


async def test_a_second_dev_on_the_same_file_is_a_standby(
    platform: Platform, client: Client, processes: Callable[[str], DevProcess], tmp_path: Path
) -> None:
    first = processes("first").start()
    await wait_leader(platform, first)
    second = processes("second").start()

    async def second_waits() -> bool:
        return "atp dev (pid" in second.log.read_text()

    await eventually(second_waits, 20, "the second atp dev started", second)
    for _ in range(3):  # a few renewal periods: the leader does not change hands
        await asyncio.sleep(1)
        assert await leader_pid(platform) == first.pid
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0
    await wait_leader(platform, second)
    (published,) = await client.publish_many([Client.request("e2e.work", {"n": 7})])

    async def succeeded() -> bool:
        return (await client.get(published.id)).state is State.SUCCEEDED

    await eventually(succeeded, 10, "a task runs on the new leader", second)


DEMO = {
    "orders.close": ({"order_id": 1}, State.SUCCEEDED),
    "reports.build": ({"name": "daily", "seconds": 0.1}, State.SUCCEEDED),
    "payments.charge": ({"amount": 9.5, "failures": 1}, State.SUCCEEDED),
    "emails.send": ({"to": "ada@example.com"}, State.SUCCEEDED),
    "imports.parse": ({"url": "s3://bucket/broken.csv"}, State.DEAD),
}


async def test_the_demo_runs_from_the_repository_root(
    platform: Platform,
    client: Client,
    processes: Callable[[str], DevProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    dev = processes("demo").start("--concurrency", "8", cwd=REPO)
    await wait_leader(platform, dev)
    ids = {
        subject: await cli(env, tmp_path, "publish", subject, json.dumps(payload))
        for subject, (payload, _) in DEMO.items()
    }

    reached: dict[str, State] = {}

    async def final() -> bool:
        reached.update({s: (await client.get(i)).state for s, i in ids.items()})
        return set(reached.values()) <= FINAL_STATES

    await eventually(final, 15, lambda: f"every demo task final (now {reached})", dev)
    assert reached == {subject: state for subject, (_, state) in DEMO.items()}
    assert await cli(env, tmp_path, "dlq", "ls", "--ids") == ids["imports.parse"]
    dev.signal(signal.SIGTERM)
    assert dev.wait(15) == 0
