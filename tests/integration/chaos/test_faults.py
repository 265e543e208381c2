"""The fault tools the suites lean on, each on its own: Redis memory pressure on a
private server, a tmpfs filled to the last byte, the slow-fsync shim, a partition in a
network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from atp.core.ports import Coordinator
from chaos import disk, netns, slowfsync
from chaos.deployment import Deployment
from chaos.faults import MemoryPressure, Target
from chaos.servers import HOST, ServerMissing, start_redis
from chaos.suites import STACKS

pytestmark = pytest.mark.integration


async def test_memory_pressure_refuses_writes_then_restores_the_limit(tmp_path: Path) -> None:
    try:
        server = start_redis(tmp_path)
    except ServerMissing as exc:
        pytest.skip(str(exc))
    with server:
        deployment = Deployment(STACKS["redis"], tmp_path, servers={"redis": server})
        target = Target(deployment, cast(Coordinator, None), random.Random(0))
        redis = Redis(host=HOST, port=server.port)
        await redis.set("before", "x" * 1000)
        fault = asyncio.create_task(MemoryPressure(duration=1.0).act(target))
        await _capped(redis)
        with pytest.raises(ResponseError, match="used memory > "):
            await redis.set("during", "x" * 1000)
        assert await redis.get("before") == b"x" * 1000  # reads go on
        detail = await fault
        assert await _maxmemory(redis) == 0
        assert await redis.set("after", "x" * 1000)
        await redis.aclose()
    assert "noeviction" in detail


async def _maxmemory(redis: Redis) -> int:
    return int((await redis.config_get("maxmemory"))["maxmemory"])


async def _capped(redis: Redis) -> None:
    """Wait until the fault has set its cap (it runs as a task of its own)."""
    for _ in range(500):
        if await _maxmemory(redis):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the memory cap was never set")


def _write(path: Path) -> None:
    with open(path, "wb") as out:
        out.write(b"x" * 8192)
        out.flush()


def test_a_filled_tmpfs_refuses_writes_until_drained(tmp_path: Path) -> None:
    folder = tmp_path / "disk"
    try:
        disk.mount_tmpfs(folder, 2)
    except disk.MountRefused as exc:
        pytest.skip(str(exc))
    try:
        assert disk.fill(folder) > 1_000_000
        with pytest.raises(OSError, match="No space left") as refused:
            _write(folder / "more")
        assert refused.value.errno == errno.ENOSPC
        disk.drain(folder)
        _write(folder / "more")
    finally:
        disk.unmount(folder)


def test_the_shim_makes_every_fsync_wait_its_delay(tmp_path: Path) -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler for the shim")
    library = slowfsync.build(tmp_path)
    control = tmp_path / "delay"
    env = {**os.environ, **slowfsync.environment(library, control, os.environ)}
    slowfsync.set_delay(control, 300)
    script = "import os, sys; fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY); os.fsync(fd)"
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "f")], env=env, check=True)
    assert time.monotonic() - started >= 0.3  # the shim slept first: a lower bound only


PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as sock:
        print(sock.recv(5).decode())
except OSError as exc:
    print(type(exc).__name__)
"""


def test_a_partition_drops_one_namespace_packets_to_chosen_ports(tmp_path: Path) -> None:
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        greeter = threading.Thread(target=_greet, args=(server, 3), daemon=True)
        greeter.start()
        try:
            namespace = netns.create(0)
        except netns.NetnsUnavailable as exc:
            pytest.skip(str(exc))
        try:
            assert _probe(namespace, port) == "hello"
            for direction in ("out", "in"):
                netns.cut(namespace, [port], direction)
                assert _probe(namespace, port) in ("TimeoutError", "timeout")
                netns.heal(namespace)
            assert _probe(namespace, port) == "hello"
        finally:
            netns.delete(namespace)


def _probe(namespace: netns.Namespace, port: int) -> str:
    argv = namespace.wrap([sys.executable, "-c", PROBE, namespace.host_ip, str(port)])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()


def _greet(server: socket.socket, times: int) -> None:
    """Answer the connections that get through (the open and healed probes)."""
    server.settimeout(30)
    for _ in range(times):
        with contextlib.suppress(OSError):
            connection, _ = server.accept()
            with connection:
                connection.sendall(b"hello")
