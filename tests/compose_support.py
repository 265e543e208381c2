"""compose.yaml as the unit tests read it, shared by test_compose.py (the stack's shape)
and test_observability_compose.py (what the metrics and traces services are told)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ATP",
    "COMPOSE",
    "LISTENS",
    "REPO",
    "SERVICES",
    "compose_schema",
    "container_ports",
    "env",
]

REPO = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ATP = ("atp-server", "atp-worker", "atp-scheduler")
LISTENS = {
    "redis": {6379},
    "nats": {4222, 8222},
    "etcd": {2379},
    "mariadb": {3306},
    "toxiproxy": {8474},
    "prometheus": {9090},
    "grafana": {3000},
    "jaeger": {16686, 14269, 4317, 4318},
    "atp-server": {8080, 50051},
    "atp-worker": {9464},
    "atp-scheduler": {9464},
}
"""Ports each service listens on inside the stack (its image's defaults, or set here)."""


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def container_ports(service: str) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in SERVICES[service].get("ports", [])}


SCHEMA_WHEEL = "docker-compose==1.29.2"
"""The last Python release of docker-compose carries the Compose Specification's JSON
schema (compose/config/compose_spec.json); read from its wheel, never copied into the
repository. Newer keys than it knows would fail the check: pin a newer source then."""


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema, from the docker-compose wheel, downloaded
    once (from the package index pip is configured with) into the venv's cache."""
    cache = Path(sys.prefix) / "cache" / "compose-schema"
    wheels = sorted(cache.glob("docker_compose-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(cache)]
        subprocess.run([*command, SCHEMA_WHEEL], check=True, capture_output=True, timeout=300)
        wheels = sorted(cache.glob("docker_compose-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        schema: dict[str, Any] = json.loads(wheel.read("compose/config/compose_spec.json"))
    return schema
