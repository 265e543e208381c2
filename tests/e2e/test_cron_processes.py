"""Three scheduler replicas as real processes fire a one-second schedule; the leader is
killed with SIGKILL twice. Every tick in the window must have exactly one task.

- ``sqlite``: three ``atp dev`` processes (each runs a scheduler replica) on one SQLite
  file and its local coordinator; the schedule is declared by their app.
- ``redis``: three ``atp scheduler`` processes on one Redis (store, transport and
  coordinator), this test's own key prefix; the schedule is added through the Client.

The firing lateness (the task's ``created_at`` minus its tick) is printed, and written
as JSON to ``$ATP_CRON_FIGURES`` when that is set.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_dev_process import SHORT, DevProcess, eventually, leader_pid

from atp.core.model import TaskRecord
from atp.core.platform import Platform
from atp.core.ports import TaskQuery
from atp.core.settings import Settings
from atp.sdk.client import Client
from atp.sdk.conformance import unique

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
RUN_BETWEEN_KILLS = 8.0
"""Seconds of ticks fired by each leader before it is killed."""


class Replica(DevProcess):
    """``atp dev cron_app:app`` (SQLite) or ``atp scheduler`` (Redis) as a process."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str, command: list[str]):
        super().__init__(tmp_path, env, name)
        self._command = command

    def start(self, *args: str, cwd: Path | None = None) -> Replica:
        argv = [sys.executable, "-m", "atp.adapters.cli", *self._command, *args]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                cwd=cwd or self.log.parent,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The backend's name and the environment of every process of the test."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    paths = os.pathsep.join(filter(None, [str(HERE), clean.get("PYTHONPATH")]))
    env = {**clean, **SHORT, "PYTHONPATH": paths}
    if request.param == "sqlite":
        env.update(ATP_STORE=f"sqlite:///{tmp_path / 'atp.db'}", ATP_TRANSPORT="memory://")
    else:
        base = request.getfixturevalue("redis_url")
        url = f"{base}{'&' if '?' in base else '?'}prefix={unique('cron')}"
        env.update(ATP_STORE=url, ATP_TRANSPORT=url)
    return request.param, env


@pytest.fixture
async def platform(backend: tuple[str, dict[str, str]]) -> AsyncIterator[Platform]:
    _, env = backend
    settings = Settings.load(env={k: v for k, v in env.items() if k.startswith("ATP_")})
    async with Platform.build(settings) as built:
        yield built


@pytest.fixture
def replicas(backend: tuple[str, dict[str, str]], tmp_path: Path) -> Iterator[list[Replica]]:
    name, env = backend
    command = ["dev", "cron_app:app"] if name == "sqlite" else ["scheduler"]
    started = [Replica(tmp_path, env, f"replica{i}", command) for i in range(3)]
    yield started
    for replica in started:
        replica.kill()


async def fired(platform: Platform) -> list[TaskRecord]:
    page = await platform.store.query(TaskQuery(subject="cron.beat", limit=1000))
    return [r for r in page.items if r.task.schedule == "beat"]


async def ticks_after(platform: Platform, seconds: float, *alive: DevProcess) -> None:
    """Wait until the latest fired tick is ``seconds`` past the latest one now (or any)."""
    start = max((r.task.tick or 0.0 for r in await fired(platform)), default=0.0)

    async def reached() -> bool:
        ticks = [r.task.tick or 0.0 for r in await fired(platform)]
        return max(ticks, default=0.0) >= start + seconds if start else bool(ticks)

    await eventually(reached, 30 + seconds, f"{seconds:g} more ticks fired", *alive)


async def kill_leader(platform: Platform, alive: list[Replica]) -> None:
    pid = await eventually(lambda: leader_pid(platform), 20, "a scheduler leads", *alive)
    (leader,) = [p for p in alive if p.pid == pid]
    leader.signal(signal.SIGKILL)
    leader.wait(10)
    alive.remove(leader)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def lateness_figures(records: list[TaskRecord]) -> dict[str, float]:
    late = [(r.task.created_at - (r.task.tick or 0.0)) * 1000 for r in records]
    return {
        "ticks": len(late),
        "p50_ms": statistics.median(late),
        "p99_ms": percentile(late, 0.99),
        "max_ms": max(late),
        "late_over_100ms": sum(ms > 100 for ms in late),  # the ticks a failover delayed
    }


def write_figures(path: Path, figures: dict[str, float]) -> None:
    path.write_text(json.dumps(figures))


async def test_three_schedulers_fire_every_tick_once_across_two_sigkills(
    backend: tuple[str, dict[str, str]], platform: Platform, replicas: list[Replica]
) -> None:
    name, _ = backend
    if name == "redis":  # `atp scheduler` runs no app: the schedule is added at run time
        await Client(platform).add_schedule("beat", "* * * * * *", "cron.beat", misfire="all")
    alive = [replica.start() for replica in replicas]
    await ticks_after(platform, 0, *alive)
    for _ in range(2):
        await ticks_after(platform, RUN_BETWEEN_KILLS, *alive)
        await kill_leader(platform, alive)
    await ticks_after(platform, RUN_BETWEEN_KILLS, *alive)
    for replica in alive:
        replica.signal(signal.SIGTERM)
        assert replica.wait(30) == 0

    records = await fired(platform)
    per_tick = Counter(r.task.tick for r in records)
    first, last = min(per_tick), max(per_tick)
    assert last - first >= 3 * RUN_BETWEEN_KILLS
    assert [tick for tick, n in per_tick.items() if n > 1] == []  # none doubled
    missing = [first + s for s in range(int(last - first) + 1) if first + s not in per_tick]
    assert missing == []  # none missed
    figures = lateness_figures(records)
    print(f"\ncron lateness on {name}, leader killed twice: {json.dumps(figures)}")
    if os.environ.get("ATP_CRON_FIGURES"):
        write_figures(Path(f"{os.environ['ATP_CRON_FIGURES']}.{name}"), figures)
