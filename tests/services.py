"""Real servers for the integration tests: given, started here, or in a container.

A service's URL comes, in this order, from:

1. its environment variable (``ATP_TEST_REDIS_URL`` and so on), taken as it is;
2. for MariaDB and PostgreSQL, the machine's own server on 127.0.0.1:3306 / 5432,
   if it answers;
3. a server binary on the PATH (``redis-server``, ``nats-server``, ``etcd``, ``mariadbd``,
   ``postgres``), started on a free port in a temporary folder and stopped at the end;
4. a container, through testcontainers, when a Docker engine answers.

When none works the test is skipped, except under ``CI=true``, where it fails: a CI run
must not pass by skipping its integration tests.

Fault tests start a private server of their own (``start_redis(folder)`` and friends, from
``chaos/servers.py``, which the chaos suites share) that they may ``kill``, ``pause``
(SIGSTOP), ``resume`` and ``restart`` on the same port. The methods block; an async test
that needs its loop to keep running during a restart calls them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from chaos.servers import (
    HOST,
    URLS,
    EtcdCluster,
    Probe,
    ServerMissing,
    ServerProcess,
    ServerStartError,
    ServiceUnavailable,
    etcd_ready,
    exchange,
    free_port,
    mysql_ready,
    nats_ready,
    postgres_ready,
    redis_ready,
    start_etcd,
    start_etcd_cluster,
    start_mariadb,
    start_nats,
    start_postgres,
    start_redis,
)

__all__ = [
    "SERVICES",
    "EtcdCluster",
    "ServerMissing",
    "ServerProcess",
    "ServerStartError",
    "Service",
    "ServiceUnavailable",
    "Services",
    "docker_answers",
    "free_port",
    "give_up",
    "must_fail",
    "start_etcd",
    "start_etcd_cluster",
    "start_mariadb",
    "start_nats",
    "start_postgres",
    "start_redis",
    "start_server",
]

# -- skip or fail --------------------------------------------------------------------------


def must_fail(env: Mapping[str, str]) -> bool:
    """Tell whether a missing service fails the test (under CI) instead of skipping it."""
    return env.get("CI", "").strip().lower() in ("true", "1", "yes")


def give_up(reason: str, env: Mapping[str, str]) -> NoReturn:
    """Skip the test, or fail it under ``CI=true``."""
    if must_fail(env):
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


# -- containers ----------------------------------------------------------------------------


def docker_answers(env: Mapping[str, str]) -> bool:
    """Tell whether a Docker engine answers ``GET /_ping`` at ``$DOCKER_HOST`` or the socket."""
    address = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"
    try:
        if address.startswith("unix://"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2.0)
                sock.connect(address.removeprefix("unix://"))
                sock.sendall(request)
                status = sock.recv(64)
        else:
            host, _, port = address.removeprefix("tcp://").partition(":")
            status = exchange(host, int(port or 2375), request, b"\r\n")
    except (OSError, ValueError):
        return False
    return status.startswith(b"HTTP/1.") and b" 200 " in status.split(b"\r\n", 1)[0]


@dataclass(frozen=True)
class Container:
    """How to run a service in a container."""

    image: str
    port: int
    command: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


def start_container(
    spec: Container, probe: Probe, url: str, timeout: float = 90.0
) -> tuple[str, Callable[[], None]]:
    """Run ``spec`` with testcontainers; return its URL and how to stop it."""
    try:
        from testcontainers.core.container import DockerContainer  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ServerStartError(f"testcontainers is not installed ({exc})", False) from exc
    container = DockerContainer(spec.image).with_exposed_ports(spec.port)
    for key, value in spec.env.items():
        container = container.with_env(key, value)
    if spec.command:
        container = container.with_command(spec.command)
    container.start()
    host, port = container.get_container_host_ip(), int(container.get_exposed_port(spec.port))
    deadline = time.monotonic() + timeout
    while not probe(host, port):
        if time.monotonic() > deadline:
            container.stop()
            raise ServerStartError(f"container {spec.image} did not answer in {timeout} s", False)
        time.sleep(0.2)
    return url.format(host=host, port=port), container.stop


# -- the services --------------------------------------------------------------------------


_ETCD_COMMAND = (
    "etcd --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls http://127.0.0.1:2379"
)
_MARIADB_ENV = {
    "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "1",
    "MARIADB_DATABASE": "test",
    "MARIADB_ROOT_HOST": "%",
}
_POSTGRES_ENV = {"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": "test"}


@dataclass(frozen=True)
class Service:
    """One kind of server the integration tests use."""

    name: str
    start: Callable[..., ServerProcess]
    """``start(folder, *extra_args)``: a private server."""
    probe: Probe
    container: Container
    shared_port: int | None = None
    """A port on 127.0.0.1 where the machine's own server may already answer."""

    @property
    def env_var(self) -> str:
        return f"ATP_TEST_{self.name.upper()}_URL"

    def url(self, host: str, port: int) -> str:
        return URLS[self.name].format(host=host, port=port)


SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        Service("redis", start_redis, redis_ready, Container("redis:7-alpine", 6379)),
        Service("nats", start_nats, nats_ready, Container("nats:2.10-alpine", 4222, "-js")),
        Service(
            "etcd",
            start_etcd,
            etcd_ready,
            Container("quay.io/coreos/etcd:v3.5.17", 2379, _ETCD_COMMAND),
        ),
        Service(
            "mysql",
            start_mariadb,
            mysql_ready,
            Container("mariadb:11", 3306, None, _MARIADB_ENV),
            shared_port=3306,
        ),
        Service(
            "postgres",
            start_postgres,
            postgres_ready,
            Container("postgres:16-alpine", 5432, None, _POSTGRES_ENV),
            shared_port=5432,
        ),
    )
}


def start_server(name: str, folder: Path, *args: str) -> ServerProcess:
    """Start a private server of service ``name``; ServerMissing if it is not installed."""
    return SERVICES[name].start(folder, *args)


class Services:
    """Hands out one URL per service for a whole session and stops what it started."""

    def __init__(
        self,
        folder: Path,
        env: Mapping[str, str] | None = None,
        docker: Callable[[Mapping[str, str]], bool] = docker_answers,
        services: Mapping[str, Service] = SERVICES,
    ) -> None:
        self._folder = folder
        self._env = os.environ if env is None else env
        self._docker = docker
        self._services = services
        self._found: dict[str, str | ServiceUnavailable] = {}
        self._cleanup = contextlib.ExitStack()

    def require(self, name: str) -> str:
        """Return the URL of service ``name``, or skip (fail under CI) the test."""
        try:
            return self.url(name)
        except ServiceUnavailable as exc:
            give_up(str(exc), self._env)

    def url(self, name: str) -> str:
        """Return the URL of service ``name``; ServiceUnavailable says what was tried."""
        if name not in self._found:
            try:
                self._found[name] = self._find(self._services[name])
            except ServiceUnavailable as exc:
                self._found[name] = exc
        found = self._found[name]
        if isinstance(found, ServiceUnavailable):
            raise found
        return found

    def close(self) -> None:
        """Stop every server and container started for the session."""
        self._cleanup.close()

    def _find(self, service: Service) -> str:
        given = self._env.get(service.env_var, "").strip()
        if given:
            return given
        if service.shared_port and service.probe(HOST, service.shared_port):
            return service.url(HOST, service.shared_port)
        reasons: list[str] = []
        for attempt in (self._start_process, self._start_container):
            with _reason_on_failure(reasons):
                return attempt(service)
        raise ServiceUnavailable(service.name, [f"{service.env_var} is not set", *reasons])

    def _start_process(self, service: Service) -> str:
        server = service.start(self._folder)
        self._cleanup.callback(server.close)
        return server.url

    def _start_container(self, service: Service) -> str:
        if not self._docker(self._env):
            raise ServiceUnavailable(service.name, ["no Docker engine answers"])
        url, stop = start_container(service.container, service.probe, URLS[service.name])
        self._cleanup.callback(stop)
        return url


@contextlib.contextmanager
def _reason_on_failure(reasons: list[str]) -> Iterator[None]:
    try:
        yield
    except ServiceUnavailable as exc:
        reasons.extend(exc.reasons)
    except ServerStartError as exc:
        reasons.append(str(exc))
    except Exception as exc:  # a container runtime's own error: report it, try the next way
        reasons.append(f"{type(exc).__name__}: {exc}")
