"""compose.yaml, deploy/atp/Dockerfile and .dockerignore checked without a Docker engine.

The Compose Specification's JSON schema checks the file's shape (the one docker-compose
1.29.2 ships, read from its wheel on PyPI: see tests.compose_support.compose_schema);
``docker compose config`` runs too where the plugin is installed. The tests below then
check what a schema cannot: every service has a healthcheck and is used, dependants wait
for health, mounted and copied files exist, and the build context leaves caches and
databases out.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.compose_support import (
    ATP,
    COMPOSE,
    LISTENS,
    REPO,
    SERVICES,
    compose_schema,
    container_ports,
    env,
)

HEADER = "\n".join(
    line for line in (REPO / "compose.yaml").read_text().splitlines() if line.startswith("#")
)
DOCKERFILE = REPO / SERVICES["atp-server"]["build"]["dockerfile"]
CONFIGS = ("deploy/prometheus/prometheus.yml", "deploy/grafana/provisioning/datasources")
NEEDED_ENV = {
    "mariadb": {"MARIADB_ROOT_PASSWORD", "MARIADB_DATABASE", "MARIADB_USER", "MARIADB_PASSWORD"},
    "grafana": {"GF_SECURITY_ADMIN_PASSWORD"},
    "jaeger": {"COLLECTOR_OTLP_ENABLED"},
    "etcd": {"ETCD_ADVERTISE_CLIENT_URLS", "ETCD_LISTEN_CLIENT_URLS"},
}
KEPT_OUT = (
    ".git/config",
    ".venv/bin/python",
    "atp.db",
    "data/atp.db-limits",
    "core/__pycache__/model.cpython-311.pyc",
    ".pytest_cache/README.md",
    ".mypy_cache/3.11/x.json",
    ".coverage",
    ".coverage.host.123",
    "coverage.xml",
    "htmlcov/index.html",
)
"""Paths the build context must not carry (any real one would do)."""


def healthcheck(service: str) -> list[str]:
    test: list[str] = SERVICES[service].get("healthcheck", {}).get("test", [])
    return test


def dependencies(service: str) -> dict[str, Any]:
    depends = SERVICES[service].get("depends_on", {})
    return {name: None for name in depends} if isinstance(depends, list) else dict(depends)


def url_hosts(text: str) -> set[str]:
    """Host names of every URL in ``text`` (and of ``host:port`` targets)."""
    hosts = {urlsplit(url).hostname for url in re.findall(r"[a-z+]+://[^\s\"',]+", text)}
    hosts |= set(re.findall(r"\b([a-z][a-z0-9-]*):\d+\b", text))
    return {host for host in hosts if host}


def config_text() -> str:
    paths = [REPO / name for name in CONFIGS]
    files = [p for path in paths for p in ([path] if path.is_file() else path.glob("*"))]
    return (
        "\n".join(file.read_text() for file in files)
        + (REPO / "deploy/toxiproxy/toxiproxy.json").read_text()
    )


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore excludes ``path``: a pattern matching it or a parent
    folder (``**/`` matching at any depth; enough for the patterns used here)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if anywhere != pattern and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], anywhere):
                return True
    return False


def test_the_file_follows_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(compose_schema())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(COMPOSE)
    ]
    assert not errors, "\n".join(errors)


def docker_compose_runs() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return found.returncode == 0


@pytest.mark.skipif(not docker_compose_runs(), reason="the docker compose plugin is not installed")
def test_docker_compose_builds_the_configuration_it_describes() -> None:
    command = ["docker", "compose", "--profile", "trials", "-f", "compose.yaml", "config", "-q"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_service_has_an_image_and_the_atp_ones_their_dockerfile() -> None:
    for name, service in SERVICES.items():
        assert service.get("image"), f"{name} has no image"
    for name in ATP:
        assert (REPO / SERVICES[name]["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_has_a_healthcheck_its_image_can_run(service: str) -> None:
    test = healthcheck(service)
    assert test, f"{service} has no healthcheck"
    assert not SERVICES[service]["healthcheck"].get("disable")
    # exec form: several of these images (etcd, toxiproxy) carry no shell
    assert test[0] == "CMD", f"{service}: {test}"
    for url in re.findall(r"http://[^\s'\"]+", " ".join(test)):
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1", f"{service} checks another host: {url}"
        assert parts.port in LISTENS[service], f"{service} listens on no port {parts.port}"


@pytest.mark.parametrize("service", ATP)
def test_atp_healthchecks_use_the_images_python_on_an_endpoint_atp_serves(service: str) -> None:
    program, *args = healthcheck(service)[1:]
    assert program == "python"
    (url,) = re.findall(r"http://[^\s'\"]+", " ".join(args))
    path = urlsplit(url).path
    assert path == ("/readyz" if service == "atp-server" else "/metrics")
    if path == "/metrics":
        assert "atp.plugins.prometheus" in env(service)["ATP_PLUGINS"]
        assert str(urlsplit(url).port) == env(service)["ATP_PROMETHEUS__PORT"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dependants_wait_until_what_they_need_is_healthy(service: str) -> None:
    for name, rule in dependencies(service).items():
        assert name in SERVICES, f"{service} depends on unknown {name}"
        assert healthcheck(name), f"{service} depends on {name}, which has no healthcheck"
        assert rule == {"condition": "service_healthy"}, f"{service} -> {name}: {rule}"
        if not SERVICES[service].get("profiles"):
            assert not SERVICES[name].get("profiles"), f"{service} needs optional {name}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_is_used(service: str) -> None:
    """By an atp service, by a file in deploy/, as a page people open, or in a profile."""
    needed: set[str] = set()
    for name in ATP:
        needed |= set(dependencies(name)) | url_hosts(" ".join(env(name).values()))
    needed |= url_hosts(config_text())
    published = {int(str(p).split(":")[0]) for p in SERVICES[service].get("ports", [])}
    opened = {int(port) for port in re.findall(r"http://localhost:(\d+)", HEADER)}
    profiles = SERVICES[service].get("profiles", [])
    documented = all(f"--profile {profile}" in HEADER for profile in profiles)
    assert documented, f"{service}: profile {profiles} is not in the file's header"
    assert service in ATP or service in needed or published & opened or profiles, service


def test_every_mounted_file_and_volume_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"


def test_host_ports_are_unique_and_map_to_listening_ports() -> None:
    host_ports: list[int] = []
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, _, container = str(mapping).rpartition(":")
            host_ports.append(int(host or container))
        proxied = {16379, 14222, 12379, 13306} if name == "toxiproxy" else set()
        assert container_ports(name) <= LISTENS[name] | proxied, name
    assert len(host_ports) == len(set(host_ports))


@pytest.mark.parametrize("service", sorted(NEEDED_ENV))
def test_each_service_has_the_variables_it_needs(service: str) -> None:
    missing = NEEDED_ENV[service] - {k for k, v in env(service).items() if v}
    assert not missing, f"{service} lacks {sorted(missing)}"


def test_toxiproxy_proxies_stack_services() -> None:
    proxies = json.loads((REPO / "deploy/toxiproxy/toxiproxy.json").read_text())
    for proxy in proxies:
        host, port = proxy["upstream"].split(":")
        assert int(port) in LISTENS[host]
        assert int(proxy["listen"].split(":")[1]) in container_ports("toxiproxy")


def test_the_dockerfile_copies_only_files_that_exist() -> None:
    copies = [
        line.split()[1:] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")
    ]
    assert copies
    for *sources, _target in copies:
        for source in (s for s in sources if not s.startswith("--")):
            assert (REPO / source).exists(), f"the Dockerfile copies missing {source}"
            assert source != ".", "COPY . takes the whole context"


def test_the_build_context_leaves_caches_and_databases_out() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    carried = [path for path in KEPT_OUT if not ignored(path, patterns)]
    assert not carried, f".dockerignore lets in {carried}"
    assert not ignored("core/model.py", patterns)
    assert not ignored("examples/demo.py", patterns)
