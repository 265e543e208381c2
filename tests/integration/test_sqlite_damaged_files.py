"""A SQLite file atp cannot use as it is: one that is no database, one cut short, one this
process may not write. Each gets one clear error and the configuration exit code (5,
never 6, which says "try again"), ``atp dev`` stops at start-up instead of logging in a
loop, and a read-only file still serves the commands that only read."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from atp.adapters.cli import cli
from atp.core.platform import Platform
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings

ROOT = Path(__file__).parents[2]
DAMAGED = "is not an SQLite database or is corrupt"
READ_ONLY = "is read-only here"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ATP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)  # atp dev finds its demo app here


def atp(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", url, *args], catch_exceptions=False)


def assert_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0]
    assert "Traceback" not in result.output


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def filled(path: Path, tasks: int = 1000) -> list[str]:
    """A real atp database of ``tasks`` tasks, checkpointed into the one file."""

    async def run() -> list[str]:
        async with Platform.build(Settings(store=f"sqlite:///{path}")) as platform:
            pad = "x" * 500
            requests = [PublishRequest("orders.close", {"n": n, "pad": pad}) for n in range(tasks)]
            return [p.id for p in await TaskService(platform).publish(requests)]

    return asyncio.run(run())


@pytest.mark.parametrize("command", [("task", "ls"), ("dlq", "ls"), ("dev",)])
def test_a_file_of_random_bytes_is_refused_at_start_up(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "atp.db"
    path.write_bytes(os.urandom(64 * 1024))
    before = digest(path)
    assert_error(atp(f"sqlite:///{path}", *command), 5, DAMAGED)
    assert digest(path) == before


@pytest.mark.parametrize("command", [("task", "ls"), ("dev",)])
def test_a_truncated_database_is_refused_as_corrupt(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "atp.db"
    filled(path)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 3)
    assert_error(atp(f"sqlite:///{path}", *command), 5, DAMAGED)


def test_mode_ro_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "atp.db"
    (first, *_) = filled(path, tasks=3)
    url = f"sqlite:///{path}?mode=ro"
    before = digest(path)
    listed = atp(url, "task", "ls")
    assert listed.exit_code == 0, listed.output
    assert first in listed.stdout
    assert atp(url, "task", "get", first).exit_code == 0
    assert atp(url, "dlq", "ls").exit_code == 0
    assert_error(atp(url, "publish", "orders.close", "{}"), 5, READ_ONLY)
    assert_error(atp(url, "task", "cancel", first), 5, READ_ONLY)
    assert digest(path) == before


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    """A folder holding an atp database, both made immutable (``chattr +i``): the tests
    run as root, whom a mode of 0444 does not stop from writing."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    path = folder / "atp.db"
    filled(path, tasks=3)
    if subprocess.run(["chattr", "+i", str(path), str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path), str(folder)], check=True)


def test_a_file_this_process_may_not_write_still_serves_reads(immutable: Path) -> None:
    url = f"sqlite:///{immutable}"
    before = digest(immutable)
    listed = atp(url, "task", "ls")
    assert listed.exit_code == 0, listed.output
    task_id = listed.stdout.splitlines()[1].split()[0]
    assert atp(url, "task", "get", task_id).exit_code == 0
    assert atp(url, "dlq", "ls").exit_code == 0
    assert_error(atp(url, "publish", "orders.close", "{}"), 5, READ_ONLY)
    assert digest(immutable) == before
