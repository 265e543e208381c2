"""Real ``atp scheduler`` and ``atp worker`` processes on one Redis: leader failover by
SIGKILL and SIGSTOP, a late write refused by the fence, a worker killed mid-task.

Every process gets short timings (2 s leases) and this test's own key prefix on the
session's Redis. Waits are bounded polls of Redis state, never fixed sleeps.
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
from typing import TypeVar

import pytest
import redis.asyncio as aioredis

from atp.core.model import State
from atp.core.platform import Platform
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.plugins.redis.keys import TransportKeys
from atp.sdk.conformance import unique

pytestmark = pytest.mark.e2e

T = TypeVar("T")
HERE = Path(__file__).parent
TTL = 2.0
SHORT = {
    "ATP_LEASE": "2",
    "ATP_HEARTBEAT": "0.5",
    "ATP_LEADER_TTL": str(TTL),
    "ATP_READY_TIMEOUT": "120",
    "ATP_REAP_INTERVAL": "0.5",
    "ATP_FORWARD_INTERVAL": "0.05",
    "ATP_DRAIN_TIMEOUT": "2",
    "ATP_CONCURRENCY": "8",
    "ATP_LOG_LEVEL": "INFO",
}


class Proc:
    """One atp process with its log in a file, killed for sure at the end of the test."""

    def __init__(self, log: Path, argv: list[str], env: dict[str, str]) -> None:
        self.log = log
        self._argv = argv
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv, cwd=HERE, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def signal(self, signum: int) -> None:
        assert self._proc is not None
        self._proc.send_signal(signum)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
            self._proc.kill()
            self._proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def url(redis_url: str) -> str:
    return f"{redis_url}{'&' if '?' in redis_url else '?'}prefix={unique('e2e')}"


@pytest.fixture
def env(url: str, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    return {
        **clean,
        **SHORT,
        "ATP_STORE": url,
        "ATP_TRANSPORT": url,
        "ATP_E2E_LEDGER": str(tmp_path / "ledger.txt"),
    }


@pytest.fixture
def spawn(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def make(name: str, *args: str) -> Proc:
        argv = [sys.executable, "-m", "atp.adapters.cli", *args]
        started.append(Proc(tmp_path / f"{name}.log", argv, env).start())
        return started[-1]

    yield make
    for proc in started:
        proc.kill()


@pytest.fixture
async def platform(env: dict[str, str]) -> AsyncIterator[Platform]:
    settings = Settings.load(env={k: v for k, v in env.items() if k.startswith("ATP_")})
    async with Platform.build(settings) as built:
        yield built


async def eventually(check: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {timeout}s (last value {value!r})")
        await asyncio.sleep(0.05)


async def leader_pid(platform: Platform) -> int | None:
    holder = await platform.coordinator.holder("scheduler")
    return int(holder.owner.split(":")[1]) if holder else None


async def publish_later(platform: Platform, subject: str, count: int, spread: float) -> set[str]:
    """Publish ``count`` tasks due over the next ``spread`` seconds; return their ids."""
    requests = [PublishRequest(subject, n, delay=0.5 + spread * n / count) for n in range(count)]
    return {p.id for p in await TaskService(platform).publish(requests)}


async def forwarded_once(platform: Platform, url: str, subject: str, ids: set[str]) -> None:
    """Wait until every task is READY and in the stream (a forwarder holds a task READY
    until its due time), then check each reached the stream exactly once."""
    client = aioredis.Redis.from_url(url.split("?")[0])
    stream = TransportKeys(url.split("prefix=")[1]).stream(subject)
    seen: Counter[str] = Counter()

    async def all_forwarded() -> bool:
        counts = await platform.store.counts()
        entries = await client.xrange(stream)
        seen.clear()
        seen.update(fields[b"i"].decode() for _, fields in entries)
        return counts.get((subject, State.READY), 0) == len(ids) and set(seen) == ids

    try:
        await eventually(all_forwarded, 30, "every task forwarded")
    finally:
        await client.aclose()
    assert [n for n in seen.values() if n > 1] == [], "a task was forwarded twice"


async def test_leader_sigkill_one_forwarder_takes_over_within_the_lease(
    platform: Platform, spawn: Callable[..., Proc], url: str
) -> None:
    schedulers = {p.pid: p for p in (spawn(f"s{i}", "scheduler") for i in range(3))}
    first = await eventually(lambda: leader_pid(platform), 30, "a leader is elected")
    subject = f"{unique('fwd')}.task"
    ids = await publish_later(platform, subject, 300, 4.0)
    await asyncio.sleep(1.0)  # the leader is forwarding
    schedulers[first].signal(signal.SIGKILL)
    killed = time.monotonic()

    async def new_leader() -> int | None:
        pid = await leader_pid(platform)
        return pid if pid not in (None, first) else None

    second = await eventually(new_leader, 3 * TTL, "another scheduler takes over")
    took = time.monotonic() - killed
    assert took <= TTL + TTL / 3 + 1.5, f"takeover after {took:.2f}s with a {TTL}s lease"
    assert second in schedulers
    await forwarded_once(platform, url, subject, ids)
    leaders = [pid for pid, p in schedulers.items() if "leader_acquired" in p.text()]
    assert sorted(leaders) == sorted([first, second]), "only the two leaders ever led"


async def test_paused_leader_steps_down_when_resumed(
    platform: Platform, spawn: Callable[..., Proc], url: str
) -> None:
    schedulers = {p.pid: p for p in (spawn(f"s{i}", "scheduler") for i in range(2))}
    first = await eventually(lambda: leader_pid(platform), 30, "a leader is elected")
    subject = f"{unique('pause')}.task"
    ids = await publish_later(platform, subject, 200, 5.0)
    await asyncio.sleep(0.5)
    schedulers[first].signal(signal.SIGSTOP)

    async def other_leads() -> bool:
        return await leader_pid(platform) not in (None, first)

    await eventually(other_leads, 3 * TTL, "the other scheduler takes over")
    await asyncio.sleep(TTL / 2)
    schedulers[first].signal(signal.SIGCONT)
    await eventually(lambda: _contains(schedulers[first], "leader_lost"), 10, "it steps down")
    assert await other_leads(), "the resumed leader took the lease back"
    await forwarded_once(platform, url, subject, ids)


async def test_a_late_write_of_a_paused_leader_is_refused_by_the_fence(
    platform: Platform,
    spawn: Callable[..., Proc],
    env: dict[str, str],
    url: str,
    tmp_path: Path,
) -> None:
    argv = [sys.executable, str(HERE / "redis_late_writer.py"), url]
    writer = subprocess.Popen(  # noqa: ASYNC220
        argv, cwd=HERE, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdin is not None
        assert writer.stdout is not None
        leading = await asyncio.to_thread(writer.stdout.readline)
        assert leading.startswith("leading"), leading
        writer.send_signal(signal.SIGSTOP)
        scheduler = spawn("scheduler", "scheduler")

        async def scheduler_leads() -> bool:
            return await leader_pid(platform) == scheduler.pid

        await eventually(scheduler_leads, 3 * TTL, "the scheduler takes the expired lease")
        await asyncio.sleep(0.5)  # its forwarder has written with its newer token
        writer.send_signal(signal.SIGCONT)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        answer = await asyncio.to_thread(writer.stdout.readline)
        assert answer.startswith("fenced"), f"the late write was not refused: {answer!r}"
    finally:
        writer.send_signal(signal.SIGCONT)
        writer.kill()
        writer.wait(10)


async def test_worker_sigkilled_while_holding_tasks_every_task_completes(
    platform: Platform, spawn: Callable[..., Proc], tmp_path: Path
) -> None:
    spawn("scheduler", "scheduler")
    victim = spawn("victim", "worker", "redis_app:app")
    requests = [PublishRequest("e2e.slow", {"n": n, "pause": 0.5}) for n in range(40)]
    ids = [p.id for p in await TaskService(platform).publish(requests)]

    async def holding() -> bool:
        counts = await platform.store.counts()
        return counts.get(("e2e.slow", State.RUNNING), 0) >= 4

    await eventually(holding, 30, "the worker holds tasks")
    victim.signal(signal.SIGKILL)
    spawn("rescuer", "worker", "redis_app:app")

    async def all_done() -> bool:
        records = await platform.store.get(ids)
        return all(r is not None and r.state is State.SUCCEEDED for r in records)

    await eventually(all_done, 60, "every task succeeded")
    ran = Counter(
        int(line.split()[0]) for line in (tmp_path / "ledger.txt").read_text().split("\n") if line
    )
    assert set(ran) == set(range(40))


async def _contains(proc: Proc, text: str) -> bool:
    return text in proc.text()
