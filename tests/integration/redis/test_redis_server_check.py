"""The start-up check of a Redis server's settings, each on a private redis-server: an
eviction policy is refused (ConfigError, nothing written), a server without AOF is warned
about once unless ``?durability=none``, and a managed Redis without CONFIG is judged by
INFO (or, when INFO is refused too, a warning says it could not be checked)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner

from atp.adapters.cli import cli
from atp.core.clock import SystemClock
from atp.core.errors import ConfigError
from atp.core.plugins import make_plugin_manager
from atp.core.ports import TaskStore
from atp.core.settings import Settings
from tests.services import ServerProcess

pytestmark = pytest.mark.integration

Start = Callable[..., ServerProcess]
NO_CONFIG = ("--rename-command", "CONFIG", "")
NO_INFO = ("--rename-command", "INFO", "")
SECRET = "s3cret"


def _store(url: str) -> TaskStore:
    return make_plugin_manager().make_store(url, Settings(store=url), SystemClock())


async def _first_call(url: str) -> None:
    store = _store(url)
    try:
        await store.get(["0"])
    finally:
        await store.close()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "atp.redis"]


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
async def test_an_eviction_policy_is_refused_and_nothing_is_written(
    private_server: Start, policy: str
) -> None:
    server = private_server("redis", "--maxmemory-policy", policy)
    with pytest.raises(ConfigError, match=f"maxmemory-policy is '{policy}'.*noeviction"):
        await _first_call(f"{server.url}?durability=none")
    client = aioredis.Redis(port=server.port)
    try:
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


async def test_without_config_the_policy_is_read_from_info(private_server: Start) -> None:
    server = private_server("redis", "--maxmemory-policy", "allkeys-lru", *NO_CONFIG)
    with pytest.raises(ConfigError, match="maxmemory-policy is 'allkeys-lru'"):
        await _first_call(server.url)


async def test_without_config_nor_info_a_warning_says_it_could_not_check(
    private_server: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = private_server("redis", *NO_CONFIG, *NO_INFO)
    with caplog.at_level(logging.WARNING, "atp.redis"):
        await _first_call(server.url)
    assert any("could not read maxmemory-policy" in text for text in _warnings(caplog))


async def test_no_persistence_is_warned_about_once(
    private_server: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = private_server("redis")  # appendonly no
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    await _set_password(server, SECRET)
    store = _store(url)
    with caplog.at_level(logging.WARNING, "atp.redis"):
        try:
            for _ in range(3):
                await store.get(["0"])
        finally:
            await store.close()
    warned = [text for text in _warnings(caplog) if "appendonly is off" in text]
    assert len(warned) == 1
    assert "durability=none" in warned[0]
    assert SECRET not in warned[0]


async def test_durability_none_accepts_a_server_without_persistence(
    private_server: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = private_server("redis")
    with caplog.at_level(logging.WARNING, "atp.redis"):
        await _first_call(f"{server.url}?durability=none")
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("fsync", "warned"), [("always", False), ("everysec", False), ("no", True)]
)
async def test_aof_passes_unless_fsync_is_left_to_the_os(
    private_server: Start, caplog: pytest.LogCaptureFixture, fsync: str, warned: bool
) -> None:
    server = private_server("redis", "--appendonly", "yes", "--appendfsync", fsync)
    with caplog.at_level(logging.WARNING, "atp.redis"):
        await _first_call(server.url)
    assert any("appendfsync is 'no'" in text for text in _warnings(caplog)) is warned
    assert all("appendonly" not in text for text in _warnings(caplog))


async def _set_password(server: ServerProcess, password: str) -> None:
    client = aioredis.Redis(port=server.port)
    try:
        await client.config_set("requirepass", password)
    finally:
        await client.aclose()


def test_atp_scheduler_on_an_evicting_redis_stops_before_its_banner(
    private_server: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("ATP_")]:
        monkeypatch.delenv(name)
    server = private_server("redis", "--maxmemory-policy", "allkeys-lru")
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    asyncio.run(_set_password(server, SECRET))
    result = CliRunner().invoke(cli, ["--store", url, "--transport", url, "scheduler"])
    assert result.exit_code == 5, result.output
    assert "maxmemory-policy is 'allkeys-lru'" in result.stderr
    assert "atp scheduler (pid" not in result.stderr
    assert SECRET not in result.output
