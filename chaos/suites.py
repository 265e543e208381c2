"""The suites: a scenario each, run on every stack it applies to.

A suite names its workload and draws its fault schedule from the run's seed, spread
over the workload's publishing time, so ``--quick`` (a short workload) keeps the same
shape with fewer faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from chaos.clock import JumpLeaderClock, SkewClock, leader_jumps_harmless
from chaos.deployment import TIMINGS, Stack
from chaos.faults import (
    AddToxic,
    CutLink,
    DiskFull,
    Fault,
    KillLeader,
    KillProcess,
    MemoryPressure,
    Partition,
    PauseLeader,
    RestartServer,
    SlowFsync,
    StopEtcdLeader,
)
from chaos.invariants import Check, Evidence
from chaos.workload import Workload

__all__ = ["QUICK", "STACKS", "SUITES", "Suite", "uses"]

STACKS = {
    stack.name: stack
    for stack in (
        Stack("embedded", transport="memory", store="sqlite", coordinator="local"),
        Stack("redis", transport="redis", store="redis", coordinator="redis"),
        Stack("nats-sqlite", transport="nats", store="sqlite", coordinator="local"),
        Stack("nats-redis-etcd", transport="nats", store="redis", coordinator="etcd"),
        Stack("redis-api", transport="redis", store="redis", coordinator="redis", api=True),
        Stack("nats-redis-etcd-api", transport="nats", store="redis", coordinator="etcd", api=True),
    )
}
"""Every transport, store and coordinator atp ships, in the deployments they make."""

DEFAULT = Workload()
LEADER_TTL = float(TIMINGS["ATP_LEADER_TTL"])
DISK_MB = 48
"""The small disk: room for a quick run's database, little enough to fill in a moment."""
Plan = Callable[[random.Random, Workload], list[Fault]]


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    plan: Plan
    applies: Callable[[Stack], bool] = lambda stack: True
    workload: Workload = DEFAULT
    clocks: bool = False
    """The atp processes run on clocks its faults can move (libfaketime)."""
    disk: int = 0
    """Megabytes of a tmpfs for the SQLite database, which its faults fill (0: none)."""
    slow_fsync: bool = False
    """The atp processes preload the shim its faults slow fsync with."""
    partitions: bool = False
    """Schedulers and workers run in network namespaces its faults cut (nftables)."""
    checks: tuple[Callable[[Evidence], Check], ...] = ()
    """Invariants of this suite's own, checked after the common ones."""


def _every(period: float, workload: Workload, start: float = 2.0) -> list[float]:
    offsets, at = [], start
    while at < workload.duration:
        offsets.append(at)
        at += period
    return offsets


def _worker_kills(rng: random.Random, workload: Workload) -> list[Fault]:
    return [
        KillProcess("worker", offset=t + rng.uniform(0, 1), down=rng.uniform(0.5, 2))
        for t in _every(4.0, workload)
    ]


def _leader_kills(rng: random.Random, workload: Workload) -> list[Fault]:
    return [
        KillLeader(offset=t + rng.uniform(0, 1), down=1.0) for t in _every(6.0, workload, start=3.0)
    ]


def _leader_pause(rng: random.Random, workload: Workload) -> list[Fault]:
    return [PauseLeader(offset=2.0 + rng.uniform(0, 1), pause=LEADER_TTL * 2.5)]


def _server_restarts(server: str) -> Plan:
    def plan(rng: random.Random, workload: Workload) -> list[Fault]:
        return [
            RestartServer(server, offset=t + rng.uniform(0, 1), down=2.0)
            for t in _every(7.0, workload, start=3.0)
        ]

    return plan


def _etcd_leader_stops(rng: random.Random, workload: Workload) -> list[Fault]:
    return [
        StopEtcdLeader(offset=t + rng.uniform(0, 1), down=3.0)
        for t in _every(7.0, workload, start=3.0)
    ]


def _clock_skew(rng: random.Random, workload: Workload) -> list[Fault]:
    """Each round: a worker's clock a minute ahead, the leader's jumping +120 s and back,
    a worker's a minute behind, then one skewed within ``max_clock_skew``."""
    faults: list[Fault] = []
    for t in _every(10.0, workload, start=1.0):
        faults += [
            SkewClock("worker", by=60.0, offset=t, duration=2.0),
            JumpLeaderClock(offset=t + 2.5, jump=120.0, hold=LEADER_TTL * 1.5),
            SkewClock("worker", by=-60.0, offset=t + 6.0, duration=1.5),
            SkewClock("worker", by=rng.choice((-1.5, 1.5)), offset=t + 8.0, duration=1.5),
        ]
    return faults


def uses(backend: str) -> Callable[[Stack], bool]:
    """Whether a stack runs ``backend`` as its transport, store or coordinator."""
    return lambda stack: backend in (stack.transport, stack.store, stack.coordinator)


def _link(server: str) -> Plan:
    """Latency, then reset connections, then a cut link, each over a third of the run."""

    def plan(rng: random.Random, workload: Workload) -> list[Fault]:
        third = workload.duration / 3
        return [
            AddToxic(
                server,
                "latency",
                offset=1.0,
                duration=third * 0.8,
                attributes={"latency": 250, "jitter": 50},
            ),
            AddToxic(
                server,
                "reset_peer",
                offset=1.0 + third,
                duration=0.5,
                stream="upstream",
                attributes={"timeout": 0},
            ),
            CutLink(server, offset=1.0 + 2 * third, duration=min(3.0, third)),
        ]

    return plan


def _memory_pressure(rng: random.Random, workload: Workload) -> list[Fault]:
    return [
        MemoryPressure(offset=t + rng.uniform(0, 1), duration=3.0)
        for t in _every(6.0, workload, start=1.0)
    ]


def _api_faults(rng: random.Random, workload: Workload) -> list[Fault]:
    """In turn: an atp server killed, the REST link cut, the gRPC link cut, a consumer
    killed."""
    makers: list[Callable[[float], Fault]] = [
        lambda at: KillProcess("server", offset=at, down=rng.uniform(0.5, 2)),
        lambda at: CutLink("rest", offset=at, duration=rng.uniform(1, 3)),
        lambda at: CutLink("grpc", offset=at, duration=rng.uniform(1, 3)),
        lambda at: KillProcess("consumer", offset=at, down=rng.uniform(0.5, 2)),
    ]
    period = (workload.duration - 1.0) / len(makers)
    return [
        makers[n % len(makers)](t + rng.uniform(0, period / 4))
        for n, t in enumerate(_every(period, workload, start=1.0))
    ]


def _disk_full(rng: random.Random, workload: Workload) -> list[Fault]:
    return [
        DiskFull(offset=t + rng.uniform(0, 1), duration=rng.uniform(1.5, 3))
        for t in _every(5.0, workload, start=1.0)
    ]


def _slow_fsync(rng: random.Random, workload: Workload) -> list[Fault]:
    return [
        SlowFsync(offset=t + rng.uniform(0, 1), delay=rng.choice([100, 300, 800]), duration=3.0)
        for t in _every(5.0, workload, start=1.0)
    ]


def _partitions(rng: random.Random, workload: Workload) -> list[Fault]:
    """In turn: the leader cut from the store (its other links kept), the store's answers
    to the leader dropped (its writes land unacknowledged), a worker's requests to the
    transport dropped, a worker cut from the store."""
    makers: list[Callable[[float], Fault]] = [
        lambda at: Partition("leader", "store", offset=at, duration=LEADER_TTL * 2),
        lambda at: Partition("leader", "store", offset=at, direction="in"),
        lambda at: Partition("worker", "transport", offset=at, direction="out"),
        lambda at: Partition("worker", "store", offset=at),
    ]
    period = (workload.duration - 1.0) / len(makers)
    return [
        makers[n % len(makers)](t + rng.uniform(0, period / 4))
        for n, t in enumerate(_every(period, workload, start=1.0))
    ]


def _hostile(rng: random.Random, workload: Workload) -> list[Fault]:
    return [
        KillProcess("worker", offset=t + rng.uniform(0, 1), down=rng.uniform(0.5, 2))
        for t in _every(6.0, workload, start=3.0)
    ]


SUITES = {
    suite.name: suite
    for suite in (
        Suite(
            "worker-kill",
            "Workers killed with SIGKILL mid-task, again and again, while producers publish.",
            _worker_kills,
        ),
        Suite(
            "leader-kill",
            "The scheduler leader killed with SIGKILL while delayed tasks come due.",
            _leader_kills,
            workload=Workload(delayed=0.7),
        ),
        Suite(
            "fencing",
            "The scheduler leader paused with SIGSTOP past its lease while "
            "another is elected, then resumed.",
            _leader_pause,
            applies=lambda stack: not stack.dev,
            workload=Workload(delayed=0.7),
        ),
        Suite(
            "redis-link",
            "High latency, reset connections and a cut link between every "
            "process and Redis, while producers publish and workers drain.",
            _link("redis"),
            applies=uses("redis"),
        ),
        Suite(
            "redis-memory",
            "Redis capped at the memory it uses (noeviction) for seconds at a time: "
            "producers get clear errors, nothing accepted is lost.",
            _memory_pressure,
            applies=uses("redis"),
        ),
        Suite(
            "redis-restart",
            "Redis killed and restarted (AOF on) mid-run.",
            _server_restarts("redis"),
            applies=uses("redis"),
        ),
        Suite(
            "nats-restart",
            "The NATS server killed and restarted mid-run.",
            _server_restarts("nats"),
            applies=uses("nats"),
        ),
        Suite(
            "nats-link",
            "High latency, reset connections and a cut link between every process and NATS.",
            _link("nats"),
            applies=uses("nats"),
        ),
        Suite(
            "etcd-link",
            "High latency, reset connections and a cut link between every process and "
            "every etcd member at once.",
            _link("etcd"),
            applies=uses("etcd"),
        ),
        Suite(
            "etcd-stop",
            "The raft leader of the three-member etcd cluster killed and "
            "restarted mid-run: the scheduler's lease lives on in the quorum.",
            _etcd_leader_stops,
            applies=uses("etcd"),
        ),
        Suite(
            "clock",
            "The scheduler leader's clock jumps +120 s and back, workers' clocks run a "
            "minute ahead or behind: no healthy task is dead, none is lost.",
            _clock_skew,
            applies=lambda stack: stack.store == "redis",
            workload=Workload(delayed=0.7),
            clocks=True,
            checks=(leader_jumps_harmless,),
        ),
        Suite(
            "api-server",
            "atp servers killed and their REST and gRPC links cut while producers publish "
            "over REST and consumers lease over gRPC.",
            _api_faults,
            applies=lambda stack: stack.api,
        ),
        Suite(
            "sqlite-disk-full",
            "The SQLite database's disk (a small tmpfs) filled to the last byte for "
            "seconds at a time: producers get clear errors, nothing accepted is lost.",
            _disk_full,
            applies=lambda stack: stack.store == "sqlite",
            disk=DISK_MB,
        ),
        Suite(
            "sqlite-slow-fsync",
            "Every fsync of the atp processes made 0.1 to 0.8 s slow for seconds at a time "
            "(a preloaded shim), with SQLite committing synchronous=full.",
            _slow_fsync,
            applies=lambda stack: stack.store == "sqlite",
            slow_fsync=True,
        ),
        Suite(
            "partition",
            "Kernel-level partitions (nftables in each process's network namespace): the "
            "leader cut from the store but not from the coordinator, the store's answers "
            "to it dropped, workers cut from the transport or the store.",
            _partitions,
            applies=lambda stack: stack.store == "redis" and not stack.api,
            partitions=True,
        ),
        Suite(
            "hostile",
            "Handlers that raise, hang past their timeout, call sys.exit(), raise "
            "KeyboardInterrupt or return NaN, among ordinary tasks, while workers are killed.",
            _hostile,
            workload=Workload(hostile=4),
        ),
    )
}

QUICK = Workload(tasks=120, doomed=4, delayed=0.3, max_delay=4.0, duration=7.0, runs=4)
"""The workload of ``--quick`` runs (CI): the same shapes, about a minute a run."""


def quick(suite: Suite) -> Suite:
    own = suite.workload
    return replace(suite, workload=replace(QUICK, delayed=own.delayed, hostile=own.hostile))
