"""The suites: a scenario each, run on every stack it applies to.

A suite names its workload and draws its fault schedule from the run's seed, spread
over the workload's publishing time, so ``--quick`` (a short workload) keeps the same
shape with fewer faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from chaos.deployment import TIMINGS, Stack
from chaos.faults import (
    AddToxic,
    CutLink,
    Fault,
    KillLeader,
    KillProcess,
    PauseLeader,
    RestartServer,
    StopEtcdLeader,
)
from chaos.workload import Workload

__all__ = ["QUICK", "STACKS", "SUITES", "Suite"]

STACKS = {
    stack.name: stack
    for stack in (
        Stack("embedded", transport="memory", store="sqlite", coordinator="local"),
        Stack("redis", transport="redis", store="redis", coordinator="redis"),
        Stack("nats-sqlite", transport="nats", store="sqlite", coordinator="local"),
        Stack("nats-redis-etcd", transport="nats", store="redis", coordinator="etcd"),
    )
}
"""Every transport, store and coordinator atp ships, in the deployments they make."""

DEFAULT = Workload()
LEADER_TTL = float(TIMINGS["ATP_LEADER_TTL"])
Plan = Callable[[random.Random, Workload], list[Fault]]


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    plan: Plan
    applies: Callable[[Stack], bool] = lambda stack: True
    workload: Workload = DEFAULT


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


def _redis_link(rng: random.Random, workload: Workload) -> list[Fault]:
    third = workload.duration / 3
    return [
        AddToxic(
            "redis",
            "latency",
            offset=1.0,
            duration=third * 0.8,
            attributes={"latency": 250, "jitter": 50},
        ),
        AddToxic(
            "redis",
            "reset_peer",
            offset=1.0 + third,
            duration=0.5,
            stream="upstream",
            attributes={"timeout": 0},
        ),
        CutLink("redis", offset=1.0 + 2 * third, duration=min(3.0, third)),
    ]


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


def _uses(backend: str) -> Callable[[Stack], bool]:
    return lambda stack: backend in (stack.transport, stack.store, stack.coordinator)


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
            _redis_link,
            applies=_uses("redis"),
        ),
        Suite(
            "redis-restart",
            "Redis killed and restarted (AOF on) mid-run.",
            _server_restarts("redis"),
            applies=_uses("redis"),
        ),
        Suite(
            "nats-restart",
            "The NATS server killed and restarted mid-run.",
            _server_restarts("nats"),
            applies=_uses("nats"),
        ),
        Suite(
            "etcd-stop",
            "The raft leader of the three-member etcd cluster killed and "
            "restarted mid-run: the scheduler's lease lives on in the quorum.",
            _etcd_leader_stops,
            applies=_uses("etcd"),
        ),
    )
}

QUICK = Workload(tasks=120, doomed=4, delayed=0.3, max_delay=4.0, duration=7.0, runs=4)
"""The workload of ``--quick`` runs (CI): the same shapes, about a minute a run."""


def quick(suite: Suite) -> Suite:
    return replace(suite, workload=replace(QUICK, delayed=suite.workload.delayed))
