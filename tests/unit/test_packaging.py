"""The package list in pyproject.toml must name every package folder, or a wheel misses it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "core": "atp.core",
    "plugins": "atp.plugins",
    "adapters": "atp.adapters",
    "sdk": "atp.sdk",
}


def _declared() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def _on_disk() -> set[str]:
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *parts)))
    return found


def test_every_package_folder_is_declared():
    assert _on_disk() - _declared() == set()


def test_every_declared_package_exists():
    assert _declared() - _on_disk() == set()


def test_the_mapping_matches_the_folders():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-dir"] == {v: k for k, v in FOLDERS.items()}
