"""atp.example.toml lists every setting and every key of the tables atp reads, with its
default, annotated; the file loads as is, and each key it documents takes effect.

The tables are comments in the file (they are opt-in), so they are read here by taking the
comment marks off: before that, nothing loaded them, and a key that nothing read
(``[atp.redis] key_prefix``) sat in the file unnoticed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from atp.adapters._auth.config import ServerSettings
from atp.core.settings import TABLES, Settings
from atp.plugins.prometheus import PrometheusConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "atp.example.toml"
PLUGIN_TABLES = "extra"
"""The one field that is not a key: the sub-tables of ``[atp]`` fill it."""

FIELDS = [f.name for f in dataclasses.fields(Settings) if f.name != PLUGIN_TABLES]
READERS: dict[str, Callable[[Settings], object]] = {
    "server": ServerSettings.load,
    "prometheus": PrometheusConfig.from_settings,
}
"""What builds each table's configuration: what a key must change to take effect."""

CHANGED: dict[str, Any] = {
    "store": "sqlite:///other.db",
    "transport": "memory://other",
    "coordinator": "memory://",
    "app": "myapp.tasks:app",
    "subjects": ["orders.*"],
    "group": "billing",
    "outbox": "outbox.db",
    "plugins": ["atp.plugins.prometheus"],
    "log_level": "DEBUG",
    "log_format": "json",
    "server.host": "0.0.0.0",
    "server.port": 9000,
    "server.grpc_port": 0,
    "server.auth": False,
    "server.tokens_file": "tokens.toml",
    "server.tokens": [],
    "server.rate": 5.0,
    "server.burst": 10,
    "server.limiter": "memory://",
    "server.max_body": 1024,
    "server.max_batch": 10,
    "server.max_page": 10,
    "server.console": False,
    "server.trace_url": "http://127.0.0.1:16686/trace/{trace_id}",
    "prometheus.port": 9465,
    "prometheus.host": "127.0.0.1",
    "prometheus.depth": "on",
    "prometheus.depth_interval": 30.0,
    "prometheus.max_subjects": 10,
    "prometheus.token": "a-token-of-more-than-16-characters",
}
"""A value other than the default for each key whose type does not give one."""

TABLE_KEYS = sorted(f"{table}.{key}" for table, keys in TABLES.items() for key in keys)


@pytest.fixture(scope="module")
def text() -> str:
    return EXAMPLE.read_text()


@pytest.fixture(scope="module")
def table(text: str) -> dict[str, Any]:
    data = tomllib.loads(text)
    assert list(data) == ["atp"], "every setting belongs in the [atp] table"
    settings: dict[str, Any] = data["atp"]
    return settings


@pytest.fixture(scope="module")
def tables(text: str) -> dict[str, dict[str, Any]]:
    return commented_tables(text)


def commented_tables(text: str) -> dict[str, dict[str, Any]]:
    """Each ``# [atp.name]`` block of the file, its comment marks taken off, as TOML."""
    found: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"^# \[atp\.\w+\].*\n(?:# \w+ = .*\n)*", text, re.MULTILINE):
        lines = [line.removeprefix("# ") for line in block.splitlines()]
        found.update(tomllib.loads("\n".join(lines))["atp"])
    return found


def loaded(tmp_path: Path, tables: dict[str, dict[str, Any]]) -> Settings:
    """Settings.load of a file with ``tables`` as its sub-tables of [atp]."""
    lines = ["[atp]"]
    for name, options in tables.items():
        lines.append(f"[atp.{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in options.items())
    path = tmp_path / "atp.toml"
    path.write_text("\n".join(lines) + "\n")
    return Settings.load(env={}, path=path)


def other_than(default: Any, name: str) -> Any:
    if name in CHANGED:
        return CHANGED[name]
    assert isinstance(default, int | float), f"give {name!r} a value in CHANGED"
    return default + 1


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_appears_with_its_default(table: dict[str, Any], name: str) -> None:
    assert name in table, f"atp.example.toml lacks the setting {name!r}"
    loaded = Settings.from_mapping({name: table[name]})
    assert getattr(loaded, name) == getattr(Settings(), name)


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_takes_effect(name: str) -> None:
    default = getattr(Settings(), name)
    changed = Settings.from_mapping({name: other_than(default, name)})
    assert getattr(changed, name) != default


@pytest.mark.parametrize("name", FIELDS)
def test_every_setting_is_annotated(text: str, name: str) -> None:
    lines = text.splitlines()
    (index,) = [i for i, line in enumerate(lines) if re.match(rf"{name}\s*=", line)]
    assert lines[index - 1].startswith("#"), f"{name!r} has no comment above it"


def test_nothing_else_is_set(table: dict[str, Any]) -> None:
    assert sorted(table) == sorted(FIELDS)


def test_the_tables_are_comments_so_the_file_loads_as_the_defaults() -> None:
    assert Settings.load(env={}, path=EXAMPLE) == Settings()


def test_the_file_documents_every_key_of_every_table_atp_reads_and_nothing_else(
    tables: dict[str, dict[str, Any]],
) -> None:
    assert set(READERS) == set(TABLES), "give each table of TABLES its reader here"
    assert {name: set(options) for name, options in tables.items()} == TABLES


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_appears_with_its_defaults(
    tmp_path: Path, tables: dict[str, dict[str, Any]], name: str
) -> None:
    settings = loaded(tmp_path, {name: tables[name]})
    assert READERS[name](settings) == READERS[name](Settings())


@pytest.mark.parametrize("name", TABLE_KEYS)
def test_every_key_of_a_table_takes_effect(tmp_path: Path, name: str) -> None:
    table, key = name.split(".")
    default = getattr(READERS[table](Settings()), key)
    config = READERS[table](loaded(tmp_path, {table: {key: other_than(default, name)}}))
    assert getattr(config, key) != default
