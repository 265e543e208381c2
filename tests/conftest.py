"""Fixtures any test may use: a ManualClock, settings, the plugin manager and real servers.

The service logic (environment variable, local binary, container, skip or fail under
``CI=true``) lives in ``tests/services.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atp.core.clock import ManualClock
from atp.core.plugins import PluginManager, make_plugin_manager
from atp.core.settings import Settings

# `python -m pytest` puts the repository on sys.path, a bare `pytest` does not; test modules
# import `tests.services` either way.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests import services  # noqa: E402


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def plugin_manager(settings: Settings) -> PluginManager:
    return make_plugin_manager(settings)


@pytest.fixture(scope="session")
def session_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Services]:
    registry = services.Services(tmp_path_factory.mktemp("services"))
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def redis_url(session_services: services.Services) -> str:
    return session_services.require("redis")


@pytest.fixture(scope="session")
def nats_url(session_services: services.Services) -> str:
    return session_services.require("nats")


@pytest.fixture(scope="session")
def etcd_url(session_services: services.Services) -> str:
    return session_services.require("etcd")


@pytest.fixture(scope="session")
def mysql_url(session_services: services.Services) -> str:
    return session_services.require("mysql")


@pytest.fixture(scope="session")
def postgres_url(session_services: services.Services) -> str:
    return session_services.require("postgres")


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Callable[..., services.ServerProcess]]:
    """Start a server of this test's own, to kill, pause or restart: ``private_server("redis")``.

    Extra arguments go to the server's command line. Skips (fails under CI) when the
    server is not installed; everything started is stopped after the test.
    """
    started: list[services.ServerProcess] = []

    def start(name: str, *args: str) -> services.ServerProcess:
        try:
            server = services.start_server(name, tmp_path, *args)
        except services.ServerMissing as exc:
            services.give_up(str(exc), os.environ)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.close()


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[services.EtcdCluster]:
    """Three etcd members on loopback for this test alone, to stop one at a time."""
    try:
        cluster = services.start_etcd_cluster(tmp_path)
    except services.ServerMissing as exc:
        services.give_up(str(exc), os.environ)
    with cluster:
        yield cluster
