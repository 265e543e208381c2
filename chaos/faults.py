"""Faults a suite injects, each at an offset from the start of the workload.

A fault acts on the deployment (a process, a server, a proxied link), waits out its
duration, undoes itself where that makes sense (restart, SIGCONT, re-enable), and says
what it did in one line for the report. Which process a fault hits is drawn from the
run's seeded random generator, so a seed replays the same schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from atp.core.errors import AtpError
from atp.core.ports import Coordinator
from chaos import disk, netns, slowfsync
from chaos.deployment import AtpProcess, Deployment
from chaos.servers import HOST, EtcdCluster

__all__ = [
    "AddToxic",
    "CutLink",
    "DiskFull",
    "Fault",
    "FaultEvent",
    "KillLeader",
    "KillProcess",
    "MemoryPressure",
    "Partition",
    "PauseLeader",
    "RestartServer",
    "SlowFsync",
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
    process.held = True
    try:
        await asyncio.to_thread(process.kill)
        target.killed.add(pid)
        await _restart_later(process, down)
    finally:
        process.held = False
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
        async with _holding(target, self.server):
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(self.down)
            await asyncio.to_thread(server.start)
        return f"{self.server} killed, back after {self.down:g}s on port {server.port}"


@contextlib.asynccontextmanager
async def _holding(target: Target, server: str) -> AsyncIterator[None]:
    """The fault has ``server`` down on purpose: the runner's watchdog leaves it be."""
    target.deployment.held.add(server)
    try:
        yield
    finally:
        target.deployment.held.discard(server)


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
        async with _holding(target, f"etcd-{index}"):
            try:
                await asyncio.to_thread(member.kill)
                await asyncio.sleep(self.down)
                now = await asyncio.to_thread(_etcd_leader, cluster)
            finally:  # the member comes back even when the cluster could not say who leads
                await asyncio.to_thread(member.start)
        return (
            f"etcd member {index} (raft leader) killed; leader meanwhile: {now}; "
            f"back after {self.down:g}s"
        )


def _etcd_leader(cluster: EtcdCluster) -> str:
    """The raft leader's index, or why there is none to name (an election under way:
    the members still name the one just killed)."""
    try:
        return f"member {cluster.leader()}"
    except (KeyError, IndexError, OSError) as exc:
        return f"none yet ({type(exc).__name__})"


@dataclass
class CutLink(Fault):
    """Disable the proxy in front of ``server`` (every connection closed) for ``duration``.

    ``etcd`` names every member's link at once; ``etcd-0`` one member's."""

    server: str
    offset: float = 0.0
    duration: float = 3.0

    @property
    def label(self) -> str:
        return f"cut link to {self.server}"

    async def act(self, target: Target) -> str:
        toxi = target.deployment.toxi
        assert toxi is not None
        links = target.deployment.links(self.server)
        for link in links:
            await toxi.set_enabled(link, False)
        await asyncio.sleep(self.duration)
        for link in links:
            await toxi.set_enabled(link, True)
        return f"link to {', '.join(links)} down for {self.duration:g}s"


@dataclass
class AddToxic(Fault):
    """Put a toxic on the link to ``server`` (``etcd``: every member's) for ``duration``."""

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
        links = target.deployment.links(self.server)
        added = [
            (link, await toxi.add_toxic(link, self.kind, self.stream, **self.attributes))
            for link in links
        ]
        await asyncio.sleep(self.duration)
        for link, toxic in added:
            await toxi.remove_toxic(link, toxic["name"])
        shown = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"{self.kind}({shown}) {self.stream} on {', '.join(links)} for {self.duration:g}s"


@dataclass
class MemoryPressure(Fault):
    """Cap Redis's memory below what it uses, with ``noeviction``, for ``duration``.

    Commands that may use memory are refused (OOM) while reads and deletes go on; the old
    limit and policy come back afterwards. The runner talks to the server itself, not
    through the proxy.
    """

    offset: float = 0.0
    duration: float = 4.0
    share: float = 0.9
    """The cap, as a share of the memory in use when it is set."""

    @property
    def label(self) -> str:
        return "redis memory pressure"

    async def act(self, target: Target) -> str:
        server = target.deployment.servers["redis"]
        redis = Redis(host=HOST, port=server.port, socket_timeout=5)
        try:
            old = await redis.config_get("maxmemory", "maxmemory-policy")
            used = int((await redis.info("memory"))["used_memory"])
            cap = int(used * self.share)
            try:
                await redis.config_set("maxmemory-policy", "noeviction")
                await redis.config_set("maxmemory", cap)
                await asyncio.sleep(self.duration)
                errors = await redis.info("errorstats")
            finally:  # whatever happened, the server gets its memory back
                await redis.config_set("maxmemory", old["maxmemory"] or 0)
                await redis.config_set("maxmemory-policy", old["maxmemory-policy"] or "noeviction")
        finally:
            await redis.aclose()
        refused = errors.get("errorstat_OOM", {}).get("count", 0)
        return (
            f"maxmemory {cap} B (in use {used} B), noeviction, for {self.duration:g}s; "
            f"OOM replies since the server started: {refused}"
        )


@dataclass
class DiskFull(Fault):
    """Fill the database's disk for ``duration`` seconds, then free it."""

    offset: float = 0.0
    duration: float = 3.0

    @property
    def label(self) -> str:
        return "sqlite disk full"

    async def act(self, target: Target) -> str:
        folder = target.deployment.db_folder
        try:
            size = await asyncio.to_thread(disk.fill, folder)
            await asyncio.sleep(self.duration)
        finally:
            await asyncio.to_thread(disk.drain, folder)
        return f"{size // 1024} KiB of ballast filled the disk for {self.duration:g}s"


@dataclass
class SlowFsync(Fault):
    """Make every fsync of the atp processes wait ``delay`` ms, for ``duration`` seconds."""

    offset: float = 0.0
    delay: int = 200
    duration: float = 4.0

    @property
    def label(self) -> str:
        return "slow fsync"

    async def act(self, target: Target) -> str:
        control = target.deployment.fsync_control
        slowfsync.set_delay(control, self.delay)
        try:
            await asyncio.sleep(self.duration)
        finally:
            slowfsync.set_delay(control, 0)
        return f"every fsync {self.delay} ms slower for {self.duration:g}s"


@dataclass
class Partition(Fault):
    """Drop the packets between one process and ``server`` for ``duration`` (nftables in
    its namespace): ``out`` its requests, ``in`` the answers, or ``both``. ``role``
    ``leader`` picks the scheduler leader; others a random running process of the role."""

    role: str
    server: str
    offset: float = 0.0
    direction: str = "both"
    duration: float = 4.0

    @property
    def label(self) -> str:
        return f"partition {self.role} from {self.server} ({self.direction})"

    async def act(self, target: Target) -> str:
        process = await self._victim(target)
        if process is None:
            return f"no {self.role} to cut off"
        deployment = target.deployment
        namespace = deployment.namespaces[process.name]
        ports = [deployment.port(link) for link in deployment.links(self.server)]
        await asyncio.to_thread(netns.cut, namespace, ports, self.direction)
        try:
            await asyncio.sleep(self.duration)
        finally:
            await asyncio.to_thread(netns.heal, namespace)
        return (
            f"{process.name} (pid {process.pid}) cut from {self.server} ({self.direction}) "
            f"for {self.duration:g}s, the rest of its links kept"
        )

    async def _victim(self, target: Target) -> AtpProcess | None:
        if self.role == "leader":
            return await _leader(target)
        alive = [p for p in target.deployment.by_role(self.role) if p.alive]
        return target.rng.choice(alive) if alive else None


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
