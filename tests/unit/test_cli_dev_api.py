"""``atp dev --api``: open only on a loopback host, authenticated when tokens are configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from atp.adapters._auth import ServerSettings, new_token
from atp.adapters.cli import _run, cli
from atp.adapters.cli._errors import EXIT_CONFIG
from atp.core.platform import Platform


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[ServerSettings]:
    """The settings each ``serve_api`` call got; nothing is served."""
    found: list[ServerSettings] = []

    async def fake_serve_api(platform: Platform, config: ServerSettings, runnables) -> None:
        found.append(config)
        await platform.close()

    monkeypatch.setattr(_run, "serve_api", fake_serve_api)
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
