"""The registry's wire format and input checks (``atp.core.registry``)."""

from __future__ import annotations

import math

import orjson
import pytest

from atp.core.codec import DECODE_ERRORS
from atp.core.errors import InvalidInput
from atp.core.ports import Member
from atp.core.registry import (
    check_announce,
    check_names,
    decode_member,
    decode_members,
    encode_member,
    member_from_dict,
    member_to_dict,
)
from atp.sdk.conformance.registry import make_member


def member(name: str = "w1", **fields: object) -> Member:
    return make_member(name, "worker", 1_750_000_000.0, **fields)


def test_a_member_survives_its_json_with_every_field() -> None:
    original = member(expires_at=1_750_000_030.25, patterns=("a.*", "ünï.>"))
    assert decode_member(encode_member(original)) == original
    assert member_from_dict(orjson.loads(orjson.dumps(member_to_dict(original)))) == original


def test_the_json_is_compact_and_names_every_field() -> None:
    data = encode_member(member())
    assert b" " not in data.replace(b"host-\xc3\xa4.example", b"")
    assert set(orjson.loads(data)) == set(Member.__dataclass_fields__)


def test_the_backends_expiry_wins_over_the_one_in_the_json() -> None:
    assert decode_member(encode_member(member(expires_at=5.0)), 9.5).expires_at == 9.5
    assert decode_member(encode_member(member(expires_at=5.0))).expires_at == 5.0


@pytest.mark.parametrize(
    "damage",
    [
        {"name": None},
        {"pid": "42"},
        {"pid": True},
        {"patterns": "a.*"},
        {"patterns": [1]},
        {"seen_at": "now"},
    ],
)
def test_a_damaged_record_raises_a_decode_error(damage: dict[str, object]) -> None:
    data = {**member_to_dict(member()), **damage}
    with pytest.raises(DECODE_ERRORS):
        member_from_dict(data)


def test_a_missing_field_raises_a_decode_error() -> None:
    data = member_to_dict(member())
    del data["host"]
    with pytest.raises(DECODE_ERRORS):
        member_from_dict(data)


def test_decode_members_sorts_filters_and_leaves_out_the_undecodable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [
        (encode_member(member("b")), 2.0),
        (b"{broken", 2.0),
        (encode_member(make_member("c", "scheduler", 0.0)), 3.0),
        (encode_member(member("a")), 1.0),
    ]
    assert [m.name for m in decode_members(rows)] == ["a", "b", "c"]
    assert [(m.name, m.expires_at) for m in decode_members(rows, "worker")] == [
        ("a", 1.0),
        ("b", 2.0),
    ]
    assert "cannot be decoded" in caplog.text


@pytest.mark.parametrize("ttl", [0, -1.0, math.nan, math.inf, True, "5"])
def test_announce_refuses_a_bad_ttl(ttl: object) -> None:
    with pytest.raises(InvalidInput, match="ttl"):
        check_announce([member()], ttl)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        (member(""), "needs a name"),
        (make_member("w2", "", 0.0), "needs a role"),
        (member("w1"), "given twice"),
        (member("w3", seen_at=math.nan), "not finite|NaN|JSON"),
        ({"name": "w4"}, "expected a Member"),
    ],
)
def test_announce_refuses_a_bad_member(bad: object, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        check_announce([member("w1"), bad], 10.0)  # type: ignore[list-item]


def test_announce_returns_each_encoding_in_order() -> None:
    members = [member("b"), member("a")]
    assert check_announce(members, 1.5) == [encode_member(m) for m in members]
    assert check_announce([], 1.5) == []


def test_withdraw_refuses_a_name_that_is_no_string() -> None:
    check_names(["a", ""])
    with pytest.raises(InvalidInput, match="string"):
        check_names(["a", 3])  # type: ignore[list-item]
