"""``atp dev --api``: open only on a loopback host, authenticated when tokens are configured;
``atp dev`` alone serves the console the same way, and runs on without it where it cannot."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from atp.adapters._auth import ServerSettings, new_token
from atp.adapters.cli import _run, cli
from atp.adapters.cli._errors import EXIT_CONFIG
from atp.core.platform import Platform


class Served(list[ServerSettings]):
    def __init__(self) -> None:
        super().__init__()
        self.apis: list[bool] = []


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Served:
    """The settings each ``serve_api`` call got, and its ``api``; nothing is served, and
    ``serve`` (the worker and scheduler without a server) returns at once."""
    found = Served()

    async def fake_serve_api(
        platform: Platform, config: ServerSettings, runnables, *, api: bool = True
    ) -> None:
        found.append(config)
        found.apis.append(api)
        await platform.close()

    async def fake_serve(platform: Platform, runnables) -> None:
        await platform.close()

    monkeypatch.setattr(_run, "serve_api", fake_serve_api)
    monkeypatch.setattr(_run, "serve", fake_serve)
    monkeypatch.chdir(Path(__file__).parents[2])  # the demo app
    monkeypatch.setenv("ATP_STORE", f"sqlite:///{tmp_path / 'atp.db'}")
    return found


def dev_api(**env: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["dev", "--api"], env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_without_tokens_it_serves_open_on_a_loopback_host(served, host):
    code, output = dev_api(ATP_SERVER__HOST=host)
    assert code == 0, output
    [config] = served
    assert (config.host, config.auth) == (host, False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "atp.example.com"])
def test_without_tokens_it_refuses_any_other_host_and_serves_nothing(served, host):
    code, output = dev_api(ATP_SERVER__HOST=host)
    assert code == EXIT_CONFIG
    assert "without authentication" in output
    assert repr(host) in output
    assert served == []


def test_with_tokens_it_serves_authenticated_on_any_host(served):
    _, token = new_token("dev", ["admin"])
    tokens = json.dumps([token.to_mapping()])
    code, output = dev_api(ATP_SERVER__HOST="0.0.0.0", ATP_SERVER__TOKENS=tokens)
    assert code == 0, output
    [config] = served
    assert config.auth
    assert len(config.token_book()) == 1


def dev(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["dev", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_dev_serves_the_console_alone_by_default(served):
    code, output = dev(ATP_SERVER__PORT="0")
    assert code == 0, output
    [config] = served
    assert (config.console, config.auth, served.apis) == (True, False, [False])


def test_dev_api_serves_the_console_beside_the_api(served):
    code, output = dev("--api", ATP_SERVER__PORT="0")
    assert code == 0, output
    [config] = served
    assert (config.console, served.apis) == (True, [True])


def test_no_console_serves_nothing_without_api_and_no_console_with_it(served):
    assert dev("--no-console")[0] == 0
    assert served == []
    assert dev("--api", "--no-console", ATP_SERVER__PORT="0")[0] == 0
    [config] = served
    assert not config.console


def test_a_console_turned_off_in_the_settings_stays_off(served):
    assert dev(ATP_SERVER__CONSOLE="false")[0] == 0
    assert served == []


def test_a_taken_port_runs_dev_without_the_console(served, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = dev(ATP_SERVER__PORT=str(port))
    assert code == 0, output
    assert served == []
    assert "running without the console" in caplog.text
    assert str(port) in caplog.text


def test_an_open_console_on_another_host_is_not_served_and_dev_runs_on(served, caplog):
    code, output = dev(ATP_SERVER__HOST="0.0.0.0", ATP_SERVER__PORT="0")
    assert code == 0, output
    assert served == []
    assert "without authentication" in caplog.text
