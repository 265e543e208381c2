"""The import directions docs/ARCHITECTURE.md claims are the ones the code makes."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {
    "atp.core": "core",
    "atp.plugins": "plugins",
    "atp.sdk": "sdk",
    "atp.adapters": "adapters",
}
GENERATED = REPO / "sdk" / "wire" / "pb"
VOCABULARY = [
    "model",
    "ports",
    "errors",
    "codec",
    "schedules",
    "subjects",
    "ids",
    "clock",
    "durations",
    "settings",
]
RUNNING = ("platform", "service", "scheduler", "worker", "cron.service", "workflows.engine")
CORE_THIRD_PARTY = {"pluggy", "orjson", "croniter"}


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module, e.g. ``atp.sdk.client``."""
    target: str
    """The imported module or name, e.g. ``atp.core.service``."""
    where: str


def _module(path: Path, package: str, folder: str) -> str:
    parts = path.relative_to(REPO / folder).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def _imports() -> Iterator[Import]:
    for package, folder in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            if GENERATED in path.parents:
                continue
            source = _module(path, package, folder)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Import):
                    yield from (Import(source, alias.name, where) for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    yield Import(source, node.module, where)


IMPORTS = list(_imports())


def _package(module: str) -> str | None:
    return next((p for p in FOLDERS if module == p or module.startswith(p + ".")), None)


def _rules() -> dict[str, set[str]]:
    """The import-rules table of docs/ARCHITECTURE.md: package -> packages it may import."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    block = re.search(r"<!-- import-rules: begin -->(.*?)<!-- import-rules: end -->", text, re.S)
    assert block, "docs/ARCHITECTURE.md lost its import-rules table"
    rules: dict[str, set[str]] = {}
    for row in block.group(1).strip().splitlines()[2:]:
        package, allowed = (cell.strip() for cell in row.strip("| ").split("|"))
        rules[package] = set(re.findall(r"atp\.\w+", allowed))
    return rules


def test_the_table_names_every_package():
    assert set(_rules()) == set(FOLDERS)


@pytest.mark.parametrize("package", sorted(FOLDERS))
def test_each_package_imports_only_what_the_table_allows(package):
    allowed = _rules()[package] | {package}
    wrong = [
        f"{i.where}: {i.source} imports {i.target}"
        for i in IMPORTS
        if _package(i.source) == package
        and i.target.startswith("atp.")
        and _package(i.target) not in allowed
    ]
    assert not wrong, "\n".join(wrong)


def _owner(module: str) -> str:
    """The unit that owns a module's private names: ``atp.plugins.sqlite`` for a plugin,
    else the top package (``atp.sdk``)."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[1] == "plugins" else ".".join(parts[:2])


def test_no_private_module_is_imported_from_outside_its_package():
    wrong = [
        f"{i.where}: {i.source} imports {i.target}"
        for i in IMPORTS
        if i.target.startswith("atp.")
        and any(part.startswith("_") and part != "__init__" for part in i.target.split("."))
        and _owner(i.source) != _owner(_private_root(i.target))
    ]
    assert not wrong, "\n".join(wrong)


def _private_root(module: str) -> str:
    """The module path up to its first private part: whose business the private part is."""
    parts = module.split(".")
    first = next(n for n, part in enumerate(parts) if part.startswith("_"))
    return ".".join(parts[:first])


def test_the_vocabulary_imports_no_running_part():
    vocabulary = {f"atp.core.{name}" for name in VOCABULARY}
    running = tuple(f"atp.core.{name}" for name in RUNNING)
    wrong = [
        f"{i.where}: {i.source} imports {i.target}"
        for i in IMPORTS
        if i.source in vocabulary and (i.target in running or i.target.startswith(running))
    ]
    assert not wrong, "\n".join(wrong)


def test_core_needs_only_its_pinned_libraries():
    stdlib = set(sys.stdlib_module_names)
    used = {
        i.target.split(".")[0]
        for i in IMPORTS
        if _package(i.source) == "atp.core" and not i.target.startswith("atp.")
    }
    assert used - stdlib - {"__future__"} <= CORE_THIRD_PARTY


def test_the_checks_see_every_package():
    seen = {_package(i.source) for i in IMPORTS}
    assert seen == set(FOLDERS)
    assert len(IMPORTS) > 1000
