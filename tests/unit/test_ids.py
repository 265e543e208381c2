import re

import pytest

from atp.core import ids
from atp.core.ids import id_time, new_id

CROCKFORD = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}\Z")


@pytest.fixture(autouse=True)
def fresh_sequence(monkeypatch):
    """These tests stamp ids far in the future; keep that from other tests' ids."""
    monkeypatch.setattr(ids, "_last", [0, 0])


def test_ids_are_26_crockford_characters():
    assert CROCKFORD.match(new_id(1_750_000_000.0))


def test_id_carries_its_millisecond():
    # far in the future, so the process-wide monotonic guard does not apply
    assert id_time(new_id(4_000_000_000.123)) == 4_000_000_000.123


def test_ids_of_one_millisecond_are_strictly_increasing():
    ids = [new_id(4_100_000_000.0) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_later_ids_sort_after_earlier_ones():
    first = new_id(4_200_000_000.0)
    second = new_id(4_200_000_000.001)
    third = new_id(4_300_000_000.0)
    assert first < second < third


def test_ids_never_go_backwards_when_time_does():
    later = new_id(4_400_000_000.0)
    earlier = new_id(1_000_000_000.0)
    assert earlier > later
    assert id_time(earlier) == id_time(later)
