"""Fixtures of the Redis integration tests: a fresh key prefix per test on the shared
private server, and URLs carrying it."""

from __future__ import annotations

import pytest

from atp.sdk.conformance import unique


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests on one server never see each other."""
    return unique("t")


@pytest.fixture
def url(redis_url: str, prefix: str) -> str:
    """The session's Redis URL with this test's own prefix."""
    separator = "&" if "?" in redis_url else "?"
    return f"{redis_url}{separator}prefix={prefix}"
