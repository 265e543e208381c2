"""Fixtures of the end-to-end tests that run real ``atp`` processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atp.sdk.conformance import unique
from tests.integration.nats._support import delete_stream, private_url


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
