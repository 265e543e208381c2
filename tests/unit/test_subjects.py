import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core.errors import InvalidInput
from atp.core.subjects import (
    MAX_SUBJECT_LENGTH,
    MAX_TOKENS,
    compile_pattern,
    matches,
    validate_pattern,
    validate_subject,
)

tokens = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=1,
    max_size=8,
)
subjects = st.lists(tokens, min_size=1, max_size=6).map(".".join)


@pytest.mark.parametrize(
    "subject", ["orders", "orders.close", "sms.send.eu-west", "A_1.b-2", "x." * 15 + "x"]
)
def test_valid_subjects(subject):
    assert validate_subject(subject) == subject


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("", "non-empty string"),
        (None, "non-empty string"),
        (42, "non-empty string"),
        ("orders..close", "empty token"),
        (".orders", "empty token"),
        ("orders.", "empty token"),
        ("orders.*", "wildcards are only allowed"),
        ("orders.>", "wildcards are only allowed"),
        ("orders close", "must match"),
        ("orders/close", "must match"),
        ("ordérs", "must match"),
        ("x." * 16 + "x", "17 tokens"),
        ("x" * (MAX_SUBJECT_LENGTH + 1), "the limit is 255"),
    ],
)
def test_invalid_subjects(subject, reason):
    with pytest.raises(InvalidInput, match=reason):
        validate_subject(subject)


def test_length_and_token_limits_are_inclusive():
    assert validate_subject("x" * MAX_SUBJECT_LENGTH)
    assert validate_subject(".".join(["t"] * MAX_TOKENS))


@pytest.mark.parametrize("pattern", [">", "*", "orders.*", "orders.>", "*.close", "a.*.c.>"])
def test_valid_patterns(pattern):
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("orders.>.close", "may only be the last token"),
        (">.orders", "may only be the last token"),
        ("orders.clo*", "must be"),
        ("orders.**", "must be"),
        ("orders..*", "empty token"),
        ("", "non-empty string"),
    ],
)
def test_invalid_patterns(pattern, reason):
    with pytest.raises(InvalidInput, match=reason):
        validate_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("orders.close", "orders.close", True),
        ("orders.close", "orders.closed", False),
        ("orders.*", "orders.close", True),
        ("orders.*", "orders", False),
        ("orders.*", "orders.close.eu", False),
        ("orders.>", "orders.close", True),
        ("orders.>", "orders.close.eu", True),
        ("orders.>", "orders", False),
        ("*.close", "orders.close", True),
        ("*.close", "orders.open", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.b.c", False),
        (">", "anything.at.all", True),
        ("*", "one", True),
        ("*", "one.two", False),
        ("ord.rs", "orders", False),
        ("a-b.*", "a-b.x", True),
    ],
)
def test_matching(pattern, subject, expected):
    assert matches(pattern, subject) is expected


def test_compiling_an_invalid_pattern_raises():
    with pytest.raises(InvalidInput):
        compile_pattern("a.>.b")


@given(subjects)
def test_everything_matches_the_full_wildcard_and_itself(subject):
    assert matches(">", subject)
    assert matches(subject, subject)


@given(subjects, st.data())
def test_a_star_in_place_of_any_token_still_matches(subject, data):
    parts = subject.split(".")
    index = data.draw(st.integers(0, len(parts) - 1))
    pattern = ".".join([*parts[:index], "*", *parts[index + 1 :]])
    assert matches(pattern, subject)
    assert not matches(pattern, subject + ".extra")
    assert matches(".".join([*parts[:index], ">"]), subject)
