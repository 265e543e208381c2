"""core.urls: the query options every backend URL is read with."""

import pytest

from atp.core.errors import InvalidInput
from atp.core.urls import mask, query_options

KNOWN = ("prefix", "timeout")


def test_options_are_read_and_an_empty_query_is_none() -> None:
    assert query_options("x URL", "prefix=a&timeout=3", KNOWN) == {"prefix": "a", "timeout": "3"}
    assert query_options("x URL", "", KNOWN) == {}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("prefx=a", "x URL: unknown option 'prefx' (did you mean 'prefix'? known: prefix,"),
        ("zzz=1", "unknown option 'zzz' (known: prefix, timeout)"),
        ("prefix=a&prefix=b", "option 'prefix' is given twice"),
        ("prefix", "malformed query string"),
    ],
)
def test_bad_queries_are_refused_with_the_url_named(query: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        query_options("x URL", query, KNOWN)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h/0", "redis://:***@h/0"),
        ("rediss://user:s3cret@h:6380/1?prefix=a", "rediss://user:***@h:6380/1?prefix=a"),
        ("nats://u:s3cret@a:4222,v:s3cret@b", "nats://u:***@a:4222,v:***@b"),
        ("nats://s3cret@h", "nats://***@h"),
        ("redis://h/0?password=s3cret&db=1", "redis://h/0?password=***&db=1"),
        ("redis://:s3/cr@et@h/0", "redis://:***@h/0"),
        ("postgresql+asyncpg://u:s3cret@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("redis:/:s3cret@h", "redis:***@h"),
    ],
)
def test_mask_hides_every_credential(url: str, shown: str) -> None:
    assert mask(url) == shown
    assert "s3cret" not in mask(url)


@pytest.mark.parametrize(
    "url", ["memory://", "sqlite:///atp.db", "sqlite:////data/a@b/atp.db", "nats://a,b:4222"]
)
def test_mask_leaves_a_url_without_credentials_alone(url: str) -> None:
    assert mask(url) == url
