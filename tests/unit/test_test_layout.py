"""The test folders are not packages (no ``__init__.py``), so pytest imports each test
module by its file name alone: two files of one name anywhere under tests/ stop the whole
run at collection, though either folder alone passes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_name_of_its_own():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
