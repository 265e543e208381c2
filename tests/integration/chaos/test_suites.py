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
]
"""(suite, stack) pairs CI runs, one of each kind of fault on every backend; each takes
well under a minute."""


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
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert f"### {suite} on {stack}: PASS" in report
    assert "| every accepted task reached a final state | pass |" in report
    assert any(fault in report for fault in ("SIGKILL", "SIGSTOP", "restart", "latency"))


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
    for suite in ("worker-kill", "leader-kill", "fencing", "redis-link", "nats-restart"):
        assert suite in done.stdout


def test_atp_chaos_finds_the_suites_from_any_folder(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "atp.adapters.cli", "chaos", "ls"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "worker-kill" in done.stdout
