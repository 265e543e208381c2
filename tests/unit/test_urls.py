"""core.urls: the query options every backend URL is read with."""

import pytest

from atp.core.errors import InvalidInput
from atp.core.urls import query_options

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
