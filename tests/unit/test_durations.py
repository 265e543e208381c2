import math

import pytest

from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        (0, 0.0),
        ("90", 90.0),
        ("1.5", 1.5),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1.5h", 5400.0),
        (" 5 m ", 300.0),
        ("-5s", -5.0),
    ],
)
def test_parses_numbers_and_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "s", "5x", "5 mins", "1e3", ".5s", "5.", "1h30m", "nan", "inf", None, [], {}, b"5"],
)
def test_refuses_what_is_not_a_duration(value):
    with pytest.raises(InvalidInput, match="not a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_refuses_booleans(value):
    with pytest.raises(InvalidInput, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_refuses_infinite_numbers(value):
    with pytest.raises(InvalidInput, match="finite"):
        parse_duration(value)


def test_error_names_what_was_parsed():
    with pytest.raises(InvalidInput, match=r"^lease: 'soon'"):
        parse_duration("soon", "lease")
