"""Credentials in backend URLs never reach a banner, a log line or an error message: each
place that shows a URL shows ``atp.core.urls.mask(url)``. No server is contacted: every
URL here points at nothing, and the errors come before any I/O."""

from __future__ import annotations

import ast
import asyncio
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from atp.adapters._auth.config import ServerSettings
from atp.adapters._auth.guard import build_guard
from atp.adapters.cli import cli
from atp.adapters.cli._banner import banner
from atp.core.errors import AtpError
from atp.core.platform import Platform
from atp.core.plugins import hookimpl, make_plugin_manager
from atp.core.ports import Clock, Coordinator, TaskStore
from atp.core.settings import Settings
from atp.plugins.memory import MemoryCoordinator, MemoryStore
from atp.plugins.nats._config import parse_url as parse_nats
from atp.plugins.redis._connection import parse_url as parse_redis
from atp.sdk.app import App
from atp.sdk.client import Client

SECRET = "s3cret"
REDIS = f"redis://:{SECRET}@127.0.0.1:1/0"
NATS = f"nats://user:{SECRET}@127.0.0.1:1"
ROOT = Path(__file__).parents[2]


def _app() -> App:
    app = App("shop")

    @app.task("orders.close")
    async def close(order_id: int) -> None: ...

    return app


@pytest.mark.parametrize("role", ["dev", "worker", "scheduler"])
def test_banners_show_no_password(role: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(store=REDIS, transport=NATS, coordinator=REDIS)
    app = None if role == "scheduler" else _app()
    banner(role, app, settings, ["orders.close"])
    shown = capsys.readouterr().err
    assert "redis://:***@127.0.0.1:1/0" in shown
    assert "nats://user:***@127.0.0.1:1" in shown
    assert SECRET not in shown


@pytest.mark.parametrize(
    "url",
    [
        f"{REDIS}?bogus=1",
        f"{REDIS}?prefix=no%20spaces",
        f"{REDIS}?socket_timeout=-1",
        f"{REDIS}?ssl_cert_reqs=none",
        f"redis://user:{SECRET}@127.0.0.1:port/0",
    ],
)
def test_redis_url_errors_show_no_password(url: str) -> None:
    with pytest.raises(AtpError) as caught:
        parse_redis(url)
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize("url", [f"{NATS}?bogus=1", f"{NATS}/path", f"{NATS}?replicas=9"])
def test_nats_url_errors_show_no_password(url: str) -> None:
    with pytest.raises(AtpError) as caught:
        parse_nats(url, Settings())
    assert SECRET not in str(caught.value)


def test_a_redis_url_option_redis_py_does_not_know_is_refused_with_the_known_ones() -> None:
    result = CliRunner().invoke(cli, ["--store", f"{REDIS}?bogus=1", "task", "ls"])
    assert result.exit_code == 2, result.output
    assert "unknown option 'bogus'" in result.stderr
    assert "known: " in result.stderr
    assert "prefix" in result.stderr
    assert "TypeError" not in result.output
    assert SECRET not in result.output


def test_settings_errors_show_no_password() -> None:
    for values in ({"store": f"redis:{SECRET}@h"}, {"transport": f"nats:/u:{SECRET}@h"}):
        with pytest.raises(AtpError) as caught:
            Settings.from_mapping(values)
        assert SECRET not in str(caught.value)


def test_an_unserved_scheme_shows_no_password() -> None:
    with pytest.raises(AtpError) as caught:
        Platform.build(Settings(store=f"frob://u:{SECRET}@h"))
    assert SECRET not in str(caught.value)
    assert "frob://u:***@h" in str(caught.value)


class Frob:
    """A store and coordinator for ``frob://`` URLs that serves no rate limiter."""

    @hookimpl
    def atp_make_store(self, url: str, settings: Settings, clock: Clock) -> TaskStore | None:
        return MemoryStore() if url.startswith("frob://") else None

    @hookimpl
    def atp_make_coordinator(
        self, url: str, settings: Settings, clock: Clock
    ) -> Coordinator | None:
        return MemoryCoordinator(clock) if url.startswith("frob://") else None


def test_the_server_limiter_warning_shows_no_password(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(store=f"frob://u:{SECRET}@h", coordinator=f"frob://v:{SECRET}@h")
    plugins = make_plugin_manager(settings)
    plugins.register(Frob())
    platform = Platform.build(settings, plugins=plugins)
    with caplog.at_level(logging.WARNING):
        guard = build_guard(platform, ServerSettings(auth=False))
    asyncio.run(guard.close())
    asyncio.run(platform.close())
    assert "no shared rate limiter" in caplog.text
    assert "frob://u:***@h" in caplog.text
    assert SECRET not in caplog.text


def test_an_unserved_limiter_url_shows_no_password() -> None:
    platform = Platform.build(Settings(store=REDIS, transport=REDIS))
    with pytest.raises(AtpError) as caught:
        build_guard(platform, ServerSettings(auth=False, limiter=f"frob://u:{SECRET}@h"))
    asyncio.run(platform.close())
    assert SECRET not in str(caught.value)


def test_settings_and_platform_reprs_show_no_password() -> None:
    settings = Settings(store=REDIS, transport=NATS, coordinator=REDIS)
    assert SECRET not in repr(settings)
    assert "store='redis://:***@127.0.0.1:1/0'" in repr(settings)
    platform = Platform.build(settings.replace(transport=REDIS))
    assert SECRET not in repr(platform)
    asyncio.run(platform.close())


def test_a_client_repr_shows_no_password() -> None:
    platform = Platform.build(Settings(store=REDIS, transport=REDIS))
    assert SECRET not in repr(Client(platform))
    asyncio.run(platform.close())


_URL_ATTRIBUTES = {"store", "transport", "coordinator", "coordinator_url", "limiter", "servers"}


def _unmasked_urls(path: Path) -> list[str]:
    """URL-valued attributes formatted into an f-string without ``mask(...)`` around them."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FormattedValue):
            continue
        value = node.value
        if isinstance(value, ast.Attribute) and value.attr in _URL_ATTRIBUTES:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(value)}")
    return found


def test_no_source_formats_a_backend_url_without_masking_it() -> None:
    sources = [
        p for top in ("core", "plugins", "adapters", "sdk") for p in (ROOT / top).rglob("*.py")
    ]
    unmasked = [line for path in sources for line in _unmasked_urls(path)]
    assert unmasked == []
