"""A real ``atp publish`` with the OpenTelemetry plugin and no collector: it gives the
collector no retries and says so once (issue 14)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: every connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_publish_with_no_collector_warns_once_and_does_not_retry(
    closed_port: int, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    env = {
        **os.environ,
        "ATP_PLUGINS": "atp.plugins.otel",
        "ATP_STORE": f"sqlite:///{tmp_path / 'atp.db'}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
    }
    done = subprocess.run(
        [sys.executable, "-m", "atp.adapters.cli", "publish", "orders.close", "{}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard only; unbounded, the exporter retried for ~8 s
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the task id
    lines = [line for line in done.stderr.splitlines() if "opentelemetry" in line]
    assert len(lines) == 1, done.stderr
    assert f"OTLP collector at {endpoint} is unreachable" in lines[0]
    assert "retrying" not in done.stderr
