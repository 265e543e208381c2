"""atp.example.toml lists every setting with its default, annotated, and loads as is."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from atp.core.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "atp.example.toml"
PLUGIN_TABLES = "extra"
"""The one field that is not a key: plugins' sub-tables of ``[atp]`` fill it."""

FIELDS = [f.name for f in dataclasses.fields(Settings) if f.name != PLUGIN_TABLES]


@pytest.fixture(scope="module")
def text() -> str:
    return EXAMPLE.read_text()


@pytest.fixture(scope="module")
def table(text: str) -> dict[str, Any]:
    data = tomllib.loads(text)
    assert list(data) == ["atp"], "every setting belongs in the [atp] table"
    settings: dict[str, Any] = data["atp"]
    return settings


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_appears_with_its_default(table: dict[str, Any], name: str) -> None:
    assert name in table, f"atp.example.toml lacks the setting {name!r}"
    loaded = Settings.from_mapping({name: table[name]})
    assert getattr(loaded, name) == getattr(Settings(), name)


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_is_annotated(text: str, name: str) -> None:
    lines = text.splitlines()
    (index,) = [i for i, line in enumerate(lines) if re.match(rf"{name}\s*=", line)]
    assert lines[index - 1].startswith("#"), f"{name!r} has no comment above it"


def test_nothing_else_is_set(table: dict[str, Any]) -> None:
    assert sorted(table) == sorted(FIELDS)


def test_plugin_tables_are_documented_but_left_empty(text: str, table: dict[str, Any]) -> None:
    assert not any(isinstance(value, dict) for value in table.values())
    assert re.search(r"^# \[atp\.\w+\]", text, re.MULTILINE)


def test_settings_load_accepts_the_file_and_gives_the_defaults() -> None:
    assert Settings.load(env={}, path=EXAMPLE) == Settings()
