"""Fixtures of the end-to-end tests that run real ``atp`` processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.sdk.conformance import unique
from tests.e2e._processes import SHORT, Proc
from tests.integration.nats._support import delete_stream, private_url

HERE = Path(__file__).parent


@pytest.fixture(params=["redis", "nats"])
async def deployment(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    """Everything on Redis (a key prefix of this test's own), or NATS as transport (a
    stream of its own) beside a SQLite store."""
    if request.param == "redis":
        url = f"{request.getfixturevalue('redis_url')}?prefix={unique('e2e')}"
        yield {"ATP_STORE": url, "ATP_TRANSPORT": url}
        return
    transport = private_url(request.getfixturevalue("nats_url"))
    yield {"ATP_STORE": f"sqlite:///{tmp_path / 'atp.db'}", "ATP_TRANSPORT": transport}
    await delete_stream(transport)


@pytest.fixture
def env(deployment: dict[str, str]) -> dict[str, str]:
    """The environment of an ``atp`` process: short leases, the deployment, this folder
    on the path (for the apps)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    path = os.pathsep.join(filter(None, [str(HERE), clean.get("PYTHONPATH")]))
    return {**clean, **SHORT, **deployment, "PYTHONPATH": path}


@pytest.fixture
async def platform(env: dict[str, str]) -> AsyncIterator[Platform]:
    """The test's own view of the deployment its ``atp`` processes run on."""
    settings = Settings.load(env={k: v for k, v in env.items() if k.startswith("ATP_")})
    async with Platform.build(settings) as built:
        yield built


@pytest.fixture
def start(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., Proc]]:
    """Starts ``atp`` processes; kills each one (and its children) at the end."""
    started: list[Proc] = []

    def run(name: str, *args: str, **more_env: str) -> Proc:
        started.append(Proc(tmp_path / f"{name}.log", {**env, **more_env}, *args))
        return started[-1]

    yield run
    for proc in started:
        proc.kill()
