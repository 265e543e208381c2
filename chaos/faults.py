"""Faults a suite injects, each at an offset from the start of the workload.

A fault acts on the deployment (a process, a server, a proxied link), waits out its
duration, undoes itself where that makes sense (restart, SIGCONT, re-enable), and says
what it did in one line for the report. Which process a fault hits is drawn from the
run's seeded random generator, so a seed replays the same schedule.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from atp.core.errors import AtpError
from atp.core.ports import Coordinator
from chaos.deployment import AtpProcess, Deployment

__all__ = [
    "AddToxic",
    "CutLink",
    "Fault",
    "FaultEvent",
    "KillLeader",
    "KillProcess",
    "PauseLeader",
    "RestartServer",
    "StopEtcdLeader",
    "inject",
]


@dataclass(frozen=True)
class FaultEvent:
    """One fault as it happened: when (seconds into the run and wall time), what, detail."""

    offset: float
    at: float
    fault: str
    detail: str
    ended: float = 0.0


@dataclass
class Target:
    """What a fault may act on."""

    deployment: Deployment
    coordinator: Coordinator
    rng: random.Random
    killed: set[int] = field(default_factory=set)
    """Pids of atp processes killed by a fault: their unfinished executions are explained."""
    paused: dict[str, int] = field(default_factory=dict)
    """Process name -> the size of its log when it was resumed after a pause."""


class Fault:
    """Base of the faults: ``offset`` seconds into the run, then ``act`` on a target."""

    offset: float = 0.0

    @property
    def label(self) -> str:
        return type(self).__name__

    async def act(self, target: Target) -> str:
        raise NotImplementedError


async def _leader(target: Target) -> AtpProcess | None:
    try:
        holder = await target.coordinator.holder("scheduler")
    except AtpError:
        return None
    if holder is None:
        return None
    pid = int(holder.owner.split(":")[1])
    return target.deployment.by_pid(pid)


async def _restart_later(process: AtpProcess, down: float) -> None:
    await asyncio.sleep(down)
    await asyncio.to_thread(process.start)


@dataclass
class KillProcess(Fault):
    """SIGKILL one running process of ``role`` (drawn at random), restart it after ``down``."""

    role: str
    offset: float = 0.0
    down: float = 1.0

    @property
    def label(self) -> str:
        return f"SIGKILL {self.role}"

    async def act(self, target: Target) -> str:
        alive = [p for p in target.deployment.by_role(self.role) if p.alive]
        if not alive:
            return f"no {self.role} running"
        process = target.rng.choice(alive)
        return await _kill(target, process, self.down)


async def _kill(target: Target, process: AtpProcess, down: float) -> str:
    pid = process.pid
    assert pid is not None
    await asyncio.to_thread(process.kill)
    target.killed.add(pid)
    await _restart_later(process, down)
    return f"{process.name} (pid {pid}) killed, restarted {down:.1f}s later as pid {process.pid}"


@dataclass
class KillLeader(Fault):
    """SIGKILL the scheduler leader, restart it after ``down``."""

    offset: float = 0.0
    down: float = 1.0

    @property
    def label(self) -> str:
        return "SIGKILL scheduler leader"

    async def act(self, target: Target) -> str:
        leader = await _leader(target)
        if leader is None:
            return "no leader to kill (election in progress)"
        return await _kill(target, leader, self.down)


@dataclass
class PauseLeader(Fault):
    """SIGSTOP the scheduler leader for ``pause`` seconds (past its lease), then SIGCONT."""

    offset: float = 0.0
    pause: float = 5.0

    @property
    def label(self) -> str:
        return "SIGSTOP scheduler leader"

    async def act(self, target: Target) -> str:
        leader = await _leader(target)
        if leader is None:
            return "no leader to pause"
        leader.signal(signal.SIGSTOP)
        await asyncio.sleep(self.pause)
        new = await _leader(target)
        target.paused[leader.name] = leader.log.stat().st_size
        leader.signal(signal.SIGCONT)
        taken = f"{new.name} led meanwhile" if new and new is not leader else "nobody took over"
        return f"{leader.name} (pid {leader.pid}) paused {self.pause:g}s; {taken}; resumed"


@dataclass
class RestartServer(Fault):
    """SIGKILL a server (``redis``, ``nats``, ``etcd``), start it again after ``down``."""

    server: str
    offset: float = 0.0
    down: float = 2.0

    @property
    def label(self) -> str:
        return f"restart {self.server}"

    async def act(self, target: Target) -> str:
        server = target.deployment.servers[self.server]
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(self.down)
        await asyncio.to_thread(server.start)
        return f"{self.server} killed, back after {self.down:g}s on port {server.port}"


@dataclass
class StopEtcdLeader(Fault):
    """SIGKILL the member etcd's raft elected leader, start it again after ``down``."""

    offset: float = 0.0
    down: float = 3.0

    @property
    def label(self) -> str:
        return "SIGKILL etcd raft leader"

    async def act(self, target: Target) -> str:
        cluster = target.deployment.etcd
        assert cluster is not None
        index = await asyncio.to_thread(cluster.leader)
        member = cluster.members[index]
        await asyncio.to_thread(member.kill)
        await asyncio.sleep(self.down)
        now = await asyncio.to_thread(cluster.leader)
        await asyncio.to_thread(member.start)
        return (
            f"etcd member {index} (raft leader) killed; member {now} led meanwhile; "
            f"back after {self.down:g}s"
        )


@dataclass
class CutLink(Fault):
    """Disable the proxy in front of ``server`` (every connection closed) for ``duration``."""

    server: str
    offset: float = 0.0
    duration: float = 3.0

    @property
    def label(self) -> str:
        return f"cut link to {self.server}"

    async def act(self, target: Target) -> str:
        toxi = target.deployment.toxi
        assert toxi is not None
        await toxi.set_enabled(self.server, False)
        await asyncio.sleep(self.duration)
        await toxi.set_enabled(self.server, True)
        return f"link to {self.server} down for {self.duration:g}s"


@dataclass
class AddToxic(Fault):
    """Put a toxic on the link to ``server`` for ``duration``, then remove it."""

    server: str
    kind: str
    offset: float = 0.0
    duration: float = 3.0
    stream: str = "downstream"
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind} on {self.server}"

    async def act(self, target: Target) -> str:
        toxi = target.deployment.toxi
        assert toxi is not None
        toxic = await toxi.add_toxic(self.server, self.kind, self.stream, **self.attributes)
        await asyncio.sleep(self.duration)
        await toxi.remove_toxic(self.server, toxic["name"])
        shown = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"{self.kind}({shown}) {self.stream} for {self.duration:g}s"


async def inject(
    faults: list[Fault], target: Target, started: float, record: Callable[[FaultEvent], None]
) -> None:
    """Run the faults one after another, each no earlier than its offset."""
    loop = asyncio.get_running_loop()
    for fault in sorted(faults, key=lambda f: f.offset):
        await asyncio.sleep(max(0.0, started + fault.offset - loop.time()))
        offset, at = loop.time() - started, time.time()
        detail = await _guarded(fault.act(target))
        record(FaultEvent(offset, at, fault.label, detail, ended=loop.time() - started))


async def _guarded(action: Awaitable[str]) -> str:
    try:
        return await action
    except Exception as exc:  # a fault that fails is reported, the run goes on
        return f"fault failed: {type(exc).__name__}: {exc}"
