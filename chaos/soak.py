"""The soak: the workload for ``minutes`` under a rolling schedule of every fault kind.

Every kind of fault that applies to the stack is in the draw; one fault follows another
after a random gap, each kind and its parameters drawn from the run's seeded generator,
so a seed replays the whole schedule. The invariants are those of every suite, checked
once at the end.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from chaos.app import HOSTILE
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
from chaos.suites import Suite, uses
from chaos.workload import Workload

__all__ = ["KINDS", "FaultKind", "kinds_for", "soak"]

LEADER_TTL = float(TIMINGS["ATP_LEADER_TTL"])
GAP = (3.0, 10.0)
"""Seconds between the end of one fault's slot and the next fault, drawn uniformly."""
RATE = 3.0
"""Tasks published per second of soak."""
DISK_MB = 512
"""The SQLite database's tmpfs in a soak: room for half an hour, filled by its faults."""


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault in the soak's draw: where it applies, how one is made."""

    name: str
    applies: Callable[[Stack], bool]
    make: Callable[[random.Random, float], Fault]


def _latency(server: str) -> Callable[[random.Random, float], Fault]:
    def make(rng: random.Random, at: float) -> Fault:
        attributes = {"latency": rng.choice([100, 250, 500]), "jitter": 50}
        return AddToxic(
            server, "latency", offset=at, duration=rng.uniform(2, 6), attributes=attributes
        )

    return make


def _reset(server: str) -> Callable[[random.Random, float], Fault]:
    def make(rng: random.Random, at: float) -> Fault:
        attributes = {"timeout": 0}
        return AddToxic(
            server, "reset_peer", offset=at, duration=0.5, stream="upstream", attributes=attributes
        )

    return make


def _cut(server: str) -> Callable[[random.Random, float], Fault]:
    return lambda rng, at: CutLink(server, offset=at, duration=rng.uniform(1, 4))


def _restart(server: str) -> Callable[[random.Random, float], Fault]:
    return lambda rng, at: RestartServer(server, offset=at, down=rng.uniform(1, 3))


def _multi(stack: Stack) -> bool:
    return not stack.dev


def _sqlite(stack: Stack) -> bool:
    return stack.store == "sqlite"


def _partitionable(stack: Stack) -> bool:
    """Schedulers and workers can run in namespaces: a server store, no api processes."""
    return stack.store == "redis" and not stack.api


def _partition(role: str, port: str, direction: str) -> Callable[[random.Random, float], Fault]:
    def make(rng: random.Random, at: float) -> Fault:
        return Partition(role, port, offset=at, direction=direction, duration=rng.uniform(2, 6))

    return make


KINDS = [
    FaultKind(
        "worker-kill",
        lambda stack: True,
        lambda rng, at: KillProcess("worker", offset=at, down=rng.uniform(0.5, 2)),
    ),
    FaultKind("leader-kill", lambda stack: True, lambda rng, at: KillLeader(offset=at, down=1.0)),
    FaultKind(
        "leader-pause", _multi, lambda rng, at: PauseLeader(offset=at, pause=LEADER_TTL * 2.5)
    ),
    FaultKind("redis-latency", uses("redis"), _latency("redis")),
    FaultKind("redis-reset", uses("redis"), _reset("redis")),
    FaultKind("redis-cut", uses("redis"), _cut("redis")),
    FaultKind("redis-restart", uses("redis"), _restart("redis")),
    FaultKind(
        "redis-memory",
        uses("redis"),
        lambda rng, at: MemoryPressure(offset=at, duration=rng.uniform(2, 5)),
    ),
    FaultKind("nats-latency", uses("nats"), _latency("nats")),
    FaultKind("nats-reset", uses("nats"), _reset("nats")),
    FaultKind("nats-cut", uses("nats"), _cut("nats")),
    FaultKind("nats-restart", uses("nats"), _restart("nats")),
    FaultKind("etcd-latency", uses("etcd"), _latency("etcd")),
    FaultKind("etcd-cut", uses("etcd"), _cut("etcd")),
    FaultKind(
        "sqlite-disk-full",
        _sqlite,
        lambda rng, at: DiskFull(offset=at, duration=rng.uniform(1.5, 4)),
    ),
    FaultKind(
        "sqlite-slow-fsync",
        _sqlite,
        lambda rng, at: SlowFsync(
            offset=at, delay=rng.choice([100, 300, 800]), duration=rng.uniform(2, 5)
        ),
    ),
    FaultKind("partition-leader-store", _partitionable, _partition("leader", "store", "both")),
    FaultKind("partition-leader-answers", _partitionable, _partition("leader", "store", "in")),
    FaultKind(
        "partition-worker-transport", _partitionable, _partition("worker", "transport", "out")
    ),
    FaultKind("partition-worker-store", _partitionable, _partition("worker", "store", "both")),
    FaultKind(
        "api-server-kill",
        lambda stack: stack.api,
        lambda rng, at: KillProcess("server", offset=at, down=rng.uniform(0.5, 2)),
    ),
    FaultKind("rest-cut", lambda stack: stack.api, _cut("rest")),
    FaultKind("grpc-cut", lambda stack: stack.api, _cut("grpc")),
    FaultKind(
        "consumer-kill",
        lambda stack: stack.api,
        lambda rng, at: KillProcess("consumer", offset=at, down=rng.uniform(0.5, 2)),
    ),
    FaultKind(
        "etcd-leader-stop",
        uses("etcd"),
        lambda rng, at: StopEtcdLeader(offset=at, down=rng.uniform(1, 3)),
    ),
]
"""Every fault kind the soak draws from, each where it applies."""


def kinds_for(stack: Stack) -> list[FaultKind]:
    return [kind for kind in KINDS if kind.applies(stack)]


def _schedule(kinds: list[FaultKind]) -> Callable[[random.Random, Workload], list[Fault]]:
    def plan(rng: random.Random, workload: Workload) -> list[Fault]:
        faults, at = [], 2.0
        while at < workload.duration:
            faults.append(rng.choice(kinds).make(rng, at))
            at += rng.uniform(*GAP)
        return faults

    return plan


def soak(stack: Stack, minutes: float, hostile_kinds: tuple[str, ...] | None = None) -> Suite:
    """The soak suite for ``stack``: ``minutes`` of workload and rolling faults."""
    seconds = minutes * 60
    tasks = max(20, int(RATE * seconds))
    workload = Workload(
        tasks=tasks,
        doomed=max(1, tasks // 100),
        duration=seconds,
        runs=max(1, int(seconds // 30)),
        hostile=max(1, int(seconds // 60)),
        hostile_kinds=tuple(HOSTILE) if hostile_kinds is None else hostile_kinds,
    )
    kinds = kinds_for(stack)
    title = (
        f"Soak: {minutes:g} minutes of workload under a rolling schedule of "
        f"{len(kinds)} fault kinds ({', '.join(k.name for k in kinds)})."
    )
    sqlite = _sqlite(stack)
    return Suite(
        "soak",
        title,
        _schedule(kinds),
        workload=workload,
        disk=DISK_MB if sqlite else 0,
        slow_fsync=sqlite,
        partitions=_partitionable(stack),
    )
