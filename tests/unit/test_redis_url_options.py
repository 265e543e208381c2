"""Redis URL options: atp's own are taken out, redis-py's are checked before they reach it,
and any other is refused with the known ones listed (no TypeError on first connect)."""

from __future__ import annotations

import pytest

from atp.core.errors import InvalidInput
from atp.plugins.redis._connection import parse_url


def test_atp_options_are_taken_out_and_redis_py_options_passed_on() -> None:
    parsed = parse_url("redis://h/0?prefix=p&socket_timeout=2&durability=none&client_name=a")
    assert parsed is not None
    assert (parsed.prefix, parsed.timeout, parsed.durability) == ("p", 2.0, "none")
    assert "client_name=a" in parsed.connect
    assert "durability" not in parsed.connect
    assert "prefix" not in parsed.connect


def test_durability_is_checked_by_default() -> None:
    parsed = parse_url("redis://h/0")
    assert parsed is not None
    assert parsed.durability == "checked"


def test_tls_options_are_taken_on_rediss() -> None:
    parsed = parse_url("rediss://h/0?ssl_cert_reqs=none&ssl_check_hostname=false")
    assert parsed is not None
    assert "ssl_cert_reqs=none" in parsed.connect


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/0?bogus=1", "unknown option 'bogus' (known: client_name, db, durability"),
        ("redis://h/0?prefx=a", "did you mean 'prefix'?"),
        ("redis://h/0?ssl_cert_reqs=none", "option 'ssl_cert_reqs' needs TLS: use rediss://"),
        ("redis://h/0?db=zero", "option 'db': bad value 'zero'"),
        ("redis://h/0?max_connections=many", "option 'max_connections': bad value 'many'"),
        ("redis://h/0?durability=some", "durability must be 'checked' or 'none'"),
        ("redis://h/0?decode_responses=true", "unknown option 'decode_responses'"),
        ("redis://h/0?db=1&db=2", "option 'db' is given twice"),
    ],
)
def test_bad_options_are_refused_naming_the_url(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_url(url)
    assert message in str(caught.value)
    assert f"redis URL {url!r}" in str(caught.value)
