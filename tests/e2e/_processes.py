"""Running real ``atp`` processes in end-to-end tests: each one's log in a file, its
children found through /proc (Linux), every wait a bounded poll."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
SHORT = {
    "ATP_LEASE": "2",
    "ATP_HEARTBEAT": "0.5",
    "ATP_LEADER_TTL": "2",
    "ATP_READY_TIMEOUT": "5",
    "ATP_REAP_INTERVAL": "0.5",
    "ATP_DRAIN_TIMEOUT": "5",
    "ATP_CONCURRENCY": "2",
    "ATP_MAX_ATTEMPTS": "10",
    "ATP_RETRY_BASE": "0.2",
    "ATP_SERVER__PORT": "0",  # `atp dev` serves its console on a free port
}
STARTED = re.compile(r"worker process (\d+) started: pid (\d+), name (\S+)")


class Proc:
    """One atp process, its log in a file; it and its children are killed at the end."""

    def __init__(self, log: Path, env: dict[str, str], *args: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "atp.adapters.cli", *args],
                cwd=log.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def names(self) -> dict[int, str]:
        """The worker name of every child it started, by pid, from its log."""
        return {int(pid): name for _, pid, name in STARTED.findall(self.text())}

    def check_alive(self) -> None:
        if self._proc.poll() is not None:
            pytest.fail(f"{self.log.name} exited with {self._proc.returncode}:\n{self.text()}")

    def signal(self, signum: int) -> None:
        self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.log.name} did not exit within {timeout}s:\n{self.text()}")

    def kill(self) -> None:
        for pid in children(self.pid):
            _kill(pid)
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)


def children(pid: int) -> set[int]:
    """The live (not zombie) child processes of ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue  # it ended while we looked
        if int(ppid) == pid and state != "Z":
            found.add(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float, what: str, *alive: Proc
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        for proc in alive:
            proc.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {timeout}s (last value {value!r})")
        await asyncio.sleep(0.1)
