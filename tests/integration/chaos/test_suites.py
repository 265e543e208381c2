"""The quick chaos subset: real deployments under faults, every invariant checked.

Each case runs ``python -m chaos run SUITE --stack STACK --quick`` as its own process, the
way an operator does, and reads the verdicts from its Markdown report. The full run is
``make chaos`` (docs/chaos.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[3]
QUICK = [
    ("worker-kill", "embedded"),
    ("fencing", "redis"),
    ("redis-link", "redis"),
    ("nats-restart", "nats-sqlite"),
    ("etcd-stop", "nats-redis-etcd"),
    ("redis-memory", "redis"),
    ("nats-link", "nats-sqlite"),
    ("etcd-link", "nats-redis-etcd"),
    ("hostile", "redis"),
    ("api-server", "redis-api"),
    ("sqlite-disk-full", "nats-sqlite"),
    ("sqlite-slow-fsync", "embedded"),
    ("partition", "nats-redis-etcd"),
]
"""(suite, stack) pairs CI runs, one of each kind of fault on every backend; each takes
well under a minute."""
FAULTS = (
    "SIGKILL",
    "SIGSTOP",
    "restart",
    "latency",
    "memory pressure",
    "disk full",
    "slow fsync",
    "partition",
)
"""Words of the fault labels: a report names at least one."""
UNAVAILABLE = ("mount -t tmpfs refused", "NetnsUnavailable")
"""What a report says when this machine cannot make the fault (no root, no nft)."""


@pytest.mark.parametrize(("suite", "stack"), QUICK)
def test_quick_suite_keeps_every_invariant(suite: str, stack: str, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "chaos",
        "run",
        suite,
        "--stack",
        stack,
        "--quick",
        "--seed",
        "20261130",
        "--reports",
        str(tmp_path),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    reports = list(tmp_path.glob("chaos-*.md"))
    assert len(reports) == 1, done.stdout + done.stderr
    report = reports[0].read_text()
    for missing in UNAVAILABLE:
        if missing in report:
            pytest.skip(f"{suite} cannot run here: {missing}")
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert f"### {suite} on {stack}: PASS" in report
    assert "| every accepted task reached a final state | pass |" in report
    assert any(fault in report for fault in FAULTS)


def test_a_short_soak_keeps_every_invariant(tmp_path: Path) -> None:
    """Half a minute of rolling faults on NATS + SQLite, hostile handlers included."""
    command = [sys.executable, "-m", "chaos", "soak", "--minutes", "0.5", "--stack"]
    command += ["nats-sqlite", "--seed", "20261203", "--reports", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400)
    reports = list(tmp_path.glob("soak-*.md"))
    assert len(reports) == 1, done.stdout + done.stderr
    report = reports[0].read_text()
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert "# atp chaos soak on nats-sqlite: PASS" in report
    assert "| tasks lost | 0 |" in report
    assert "| cron ticks missed | 0 |" in report
    assert "| cron ticks doubled | 0 |" in report
    assert "hostile handlers: each task final per its policy" in report


def test_unknown_suites_are_refused_before_anything_starts(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "chaos", "run", "nope", "--reports", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown suite or stack: nope" in done.stderr
    assert not list(tmp_path.iterdir())


def test_ls_names_every_suite() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "ls"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for suite, _ in QUICK:
        assert suite in done.stdout


def test_atp_chaos_finds_the_suites_from_any_folder(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "atp.adapters.cli", "chaos", "ls"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "worker-kill" in done.stdout


def test_a_soak_with_bad_arguments_is_refused_before_anything_starts(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "chaos", "soak", "--minutes", "0", "--stack", "nope"]
    command += ["--hostile", "raises,sulks", "--reports", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--minutes must be > 0" in done.stderr
    assert "unknown stack 'nope'" in done.stderr
    assert "unknown hostile kinds ['sulks']" in done.stderr
    assert not list(tmp_path.iterdir())
