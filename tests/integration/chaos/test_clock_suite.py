"""The clock suite, quick (ADR 0029): real processes under libfaketime; the leader's
clock jumps +120 s and back, workers' clocks run a minute off, and every invariant holds,
with no task run again because of the leader's jump."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chaos import faketime

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.skipif(not faketime.available(), reason="libfaketime is not installed"),
]

REPO = Path(__file__).resolve().parents[3]


def test_quick_clock_suite_keeps_every_invariant(tmp_path: Path) -> None:
    command = [
        *(sys.executable, "-m", "chaos", "run", "clock", "--stack", "redis", "--quick"),
        *("--seed", "20261130", "--reports", str(tmp_path)),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    reports = list(tmp_path.glob("chaos-*.md"))
    assert len(reports) == 1, done.stdout + done.stderr
    report = reports[0].read_text()
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert "### clock on redis: PASS" in report
    assert "| a leader whose clock jumped recovered no healthy lease | pass |" in report
    assert "| dead letters only for tasks designed to fail | pass |" in report
    for fault in ("leader clock +120 s", "worker clock +60 s", "worker clock -60 s"):
        assert fault in report
