"""The package list in pyproject.toml must name every package folder, or a wheel misses it."""

from __future__ import annotations

import glob
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


def _package_dir(package: str) -> Path:
    top, *rest = package.split(".")[1:]
    folder = {v.split(".")[1]: k for k, v in FOLDERS.items()}[top]
    return ROOT / folder / Path(*rest)


def _shipped(package: str) -> set[Path]:
    """The files setuptools' package-data globs take from ``package``'s folder."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]
    folder = _package_dir(package)
    patterns = [*data.get("*", []), *data.get(package, [])]
    return {folder / name for pattern in patterns for name in glob.glob(pattern, root_dir=folder)}


def test_every_data_file_of_a_package_ships_in_the_wheel():
    """A Lua script or a static asset the package folders hold but the globs miss would be
    absent from a wheel (the Redis plugin's lua/ once was) though every editable install
    works."""
    missing = []
    for package in _on_disk():
        folder = _package_dir(package)
        shipped = _shipped(package)
        for path in folder.rglob("*"):
            owner = next(
                p for p in (path.parent, *path.parent.parents) if (p / "__init__.py").exists()
            )
            if owner != folder or path.is_dir() or path.suffix in {".py", ".pyc"}:
                continue
            if path not in shipped:
                missing.append(str(path.relative_to(ROOT)))
    assert missing == []
