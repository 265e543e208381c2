"""The soak's rolling schedule: every applicable fault kind, reproducible from the seed."""

from __future__ import annotations

import random

from chaos.faults import AddToxic, CutLink, Fault, KillProcess, MemoryPressure, StopEtcdLeader
from chaos.soak import kinds_for, soak
from chaos.suites import STACKS


def _schedule(stack: str, seed: str, minutes: float = 10) -> list[Fault]:
    suite = soak(STACKS[stack], minutes)
    return suite.plan(random.Random(seed), suite.workload)


def test_a_seed_replays_the_same_schedule() -> None:
    assert _schedule("redis", "7") == _schedule("redis", "7")
    assert _schedule("redis", "7") != _schedule("redis", "8")


def test_the_schedule_rolls_through_the_whole_soak() -> None:
    faults = _schedule("nats-redis-etcd", "1", minutes=30)
    offsets = [fault.offset for fault in faults]
    assert offsets == sorted(offsets)
    assert offsets[-1] > 29 * 60
    assert len(faults) > 100


def test_every_kind_that_applies_is_drawn_and_no_other() -> None:
    embedded = {kind.name for kind in kinds_for(STACKS["embedded"])}
    assert embedded == {"worker-kill", "leader-kill", "sqlite-disk-full", "sqlite-slow-fsync"}
    faults = _schedule("nats-redis-etcd", "1", minutes=30)
    kinds = {type(fault) for fault in faults}
    assert {AddToxic, CutLink, KillProcess, MemoryPressure, StopEtcdLeader} <= kinds
    servers = {f.server for f in faults if isinstance(f, CutLink | AddToxic)}
    assert servers == {"redis", "nats", "etcd"}


def test_the_workload_scales_with_the_minutes() -> None:
    short, long = soak(STACKS["redis"], 0.5).workload, soak(STACKS["redis"], 30).workload
    assert (short.duration, long.duration) == (30, 1800)
    assert long.tasks > short.tasks > 0
    assert long.runs > short.runs
    assert long.hostile > 0


def test_a_soak_on_sqlite_gets_a_small_disk_and_the_fsync_shim() -> None:
    on_sqlite, on_redis = soak(STACKS["nats-sqlite"], 1), soak(STACKS["redis"], 1)
    assert on_sqlite.disk > 0
    assert on_sqlite.slow_fsync
    assert (on_redis.disk, on_redis.slow_fsync) == (0, False)


def test_an_api_stack_draws_server_and_link_faults() -> None:
    kinds = {kind.name for kind in kinds_for(STACKS["nats-redis-etcd-api"])}
    assert {"api-server-kill", "rest-cut", "grpc-cut", "consumer-kill"} <= kinds
    assert "etcd-leader-stop" in kinds
