"""Every snippet a reader copies works as written.

Collects each fenced block of README.md and docs/*.md (not docs/adr), every inline
`` `atp ...` `` span of their prose, and the annotations of deploy/prometheus/alerts.yml:

- ``python`` blocks compile as a module (a top-level ``await`` or ``async with`` does not),
  use no undefined name (ruff's F821: a missing import) and import nothing unused (F401).
  A block that is a fragment on purpose says so on the line before it,
  ``<!-- snippet: fragment -->``, and is only compiled.
- ``atp chaos`` hands its words to chaos/__main__.py's own parser: only the command name
  is checked there.
- ``json``, ``toml`` and ``yaml`` blocks parse (a ``json`` block may be JSON Lines).
- Every ``atp ...`` command line (shell blocks, untagged blocks, inline spans, alert
  runbooks) names a command of the live click tree with options that command has, so a
  renamed command or option fails here, naming the file and line.
- The few blocks that are whole programs on the embedded default are run in a subprocess,
  in a temporary directory with ``ATP_*`` pointing there (``RUNS``).

One file of about 500 lines on purpose: the Markdown reader, the command checker and the
tests that pin both only make sense together.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the lint extra

from atp.adapters.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # not docs/adr
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"<!--\s*snippet:\s*(?P<kind>[\w-]+)\s*-->")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
INLINE = re.compile(r"(?<!`)`(?P<code>[^`]+)`(?!`)")
SHELL = frozenset({"", "bash", "sh", "shell", "console", "zsh"})
"""Block languages whose ``atp`` lines are checked; an untagged block is read as shell."""
ATP_WORD = re.compile(r"(?:^|[|;&(]\s*|^\s*\$\s+)(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?atp(?:\s|$)")
PROMPT = re.compile(r"^\s*\$\s+")
REDIRECT = re.compile(r"^\d*(?:<|>>?)(?:&\d)?$")
REDIRECT_TO = re.compile(r"^\d*(?:<|>>?)\S+$")
OPERATORS = frozenset({"|", "||", "&&", ";", "&"})
ANYTHING = frozenset({"...", "…"})
"""A placeholder for the rest of a command line: nothing after it is checked."""
TEMPLATE = re.compile(r"\{\{[^}]*\}\}")
"""Prometheus' ``{{ $labels.subject }}`` in an alert's annotation stands for a value."""
RUN_TIMEOUT = 60.0
TESTS = re.compile(r"^(?:(?:async )?def test_|class Test)", re.MULTILINE)
"""A block that defines tests is run by pytest, in strict asyncio mode."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language, its text and its section."""

    path: Path
    line: int
    lang: str
    body: str
    heading: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Commands:
    """The ``atp`` command lines of one block, inline span or alert annotation."""

    where: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    """A block that is a whole program, and what it needs beside itself to run."""

    page: str
    heading: str
    needs_repo: bool = False
    """The repository on ``sys.path`` (a snippet that imports ``examples.*``)."""
    support: tuple[tuple[str, str], ...] = ()
    """Files written beside the snippet: (relative path, text)."""
    modules: tuple[tuple[str, str], ...] = ()
    """Other blocks written beside it as modules: (file name, heading of the same page)."""


# A stand-in for the plugin docs/plugins.md writes: atp's memory backends under its names,
# so the page's conformance classes run as written.
FOO_STORE = """
from atp.core.ports import Clock
from atp.plugins.memory import MemoryStore


class FooStore(MemoryStore):
    @classmethod
    def from_url(cls, url: str, clock: Clock) -> "FooStore":
        return cls()
"""
FOO_TRANSPORT = """
from atp.core.ports import Clock
from atp.plugins.memory import MemoryTransport


class FooTransport(MemoryTransport):
    def __init__(self, url: str, *, clock: Clock, lease: float) -> None:
        super().__init__(clock, lease)
"""
RUNS = (
    Run("README.md", "From Python"),
    Run("README.md", "Workflows"),
    Run("README.md", "Testing your handlers", modules=(("myapp.py", "From Python"),)),
    Run("docs/workflows.md", "Testing", needs_repo=True),
    Run(
        "docs/plugins.md",
        "Testing it: the conformance suites",
        support=(
            ("atp_foo/__init__.py", ""),
            ("atp_foo/store.py", FOO_STORE),
            ("atp_foo/transport.py", FOO_TRANSPORT),
        ),
    ),
)


# --- collecting -------------------------------------------------------------------------


@functools.cache
def read_page(path: Path) -> tuple[list[Block], str]:
    """The fenced blocks of a Markdown page, and its prose with every block blanked out."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = path.read_text().splitlines()
    heading, index = "", 0
    while index < len(lines):
        line = lines[index]
        fence = FENCE.match(line)
        if fence is None:
            if title := HEADING.match(line):
                heading = title["title"]
            prose.append(line)
            index += 1
            continue
        end = _closing(lines, index, fence["fence"])
        body = textwrap.dedent("\n".join(lines[index + 1 : end]))
        marker = _marker(lines, index)
        blocks.append(Block(path, index + 1, fence["lang"].lower(), body, heading, marker))
        prose.extend([""] * (end + 1 - index))
        index = end + 1
    return blocks, "\n".join(prose)


def _closing(lines: list[str], start: int, fence: str) -> int:
    for index in range(start + 1, len(lines)):
        if lines[index].strip().startswith(fence[0] * len(fence)):
            return index
    raise AssertionError(f"{lines[start]!r} at line {start + 1} is never closed")


def _marker(lines: list[str], fence_index: int) -> str | None:
    before = [line for line in lines[:fence_index] if line.strip()]
    found = MARKER.search(before[-1]) if before else None
    return found["kind"] if found else None


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in read_page(page)[0]]


def blocks_of(*langs: str) -> list[Block]:
    return [block for block in all_blocks() if block.lang in langs]


def command_sources() -> Iterator[Commands]:
    """Every place that tells a reader to run ``atp ...``."""
    for page in PAGES:
        blocks, prose = read_page(page)
        for block in blocks:
            if block.lang in SHELL:
                yield Commands(block.where, tuple(shell_lines(block.body)))
        yield from _inline(page, prose)
    yield from _annotations()


def _inline(page: Path, prose: str) -> Iterator[Commands]:
    for found in INLINE.finditer(prose):
        code = found["code"].replace("\\|", "|").replace("\n", " ").strip()
        if code == "atp" or code.startswith("atp "):
            line = prose.count("\n", 0, found.start()) + 1
            yield Commands(f"{page.relative_to(ROOT)}:{line}", (code,))


def _annotations() -> Iterator[Commands]:
    text = ALERTS.read_text()
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            for key, value in rule.get("annotations", {}).items():
                spans = [found["code"] for found in INLINE.finditer(TEMPLATE.sub("VALUE", value))]
                where = f"{ALERTS.relative_to(ROOT)}:{rule.get('alert')}.{key}"
                yield Commands(where, tuple(s for s in spans if s.startswith("atp ")))


def shell_lines(body: str) -> Iterator[str]:
    """The lines of a shell block that run ``atp``, continuation lines joined."""
    for line in body.replace("\\\n", " ").splitlines():
        if ATP_WORD.search(line):
            yield PROMPT.sub("", line)


# --- checking commands against the click tree -------------------------------------------


def atp_invocations(line: str) -> Iterator[list[str]]:
    """The argument lists of every ``atp`` run on one line, alternatives (``a|b``) apart."""
    words = shlex.split(TEMPLATE.sub("VALUE", line), comments=True)
    for segment in _segments(words):
        while segment and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", segment[0]):
            segment = segment[1:]
        if segment and (segment[0] == "atp" or segment[0].endswith("/atp")):
            yield from _alternatives([word.strip("[]") for word in segment[1:]])


def _segments(words: list[str]) -> Iterator[list[str]]:
    segment: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in OPERATORS:
            yield segment
            segment = []
        elif REDIRECT.match(word):
            skip = not word.endswith(("&1", "&2"))
        elif not REDIRECT_TO.match(word) or re.fullmatch(r"<[^<>]+>", word):
            segment.append(word)
    yield segment


def _alternatives(words: list[str]) -> Iterator[list[str]]:
    choices = [word.split("|") if _is_choice(word) else [word] for word in words]
    for combination in itertools.product(*choices):
        yield list(combination)


def _is_choice(word: str) -> bool:
    return "|" in word and all(part.isidentifier() for part in word.split("|"))


def check_invocation(words: list[str]) -> str | None:
    """What is wrong with ``atp WORDS`` as the live CLI reads it, or None."""
    command: click.Command = cli
    context = click.Context(cli, info_name="atp")
    path = "atp"
    pending = iter(words)
    for word in pending:
        if word in ANYTHING or word == "--":
            return None
        if command.context_settings.get("ignore_unknown_options"):
            return None  # its words go to another parser (`atp chaos` to chaos/__main__.py)
        if word.startswith("-") and word != "-":
            problem = _check_option(command, context, path, word, pending)
            if problem:
                return problem
        elif isinstance(command, click.Group):
            sub = command.get_command(context, word)
            if sub is None:
                known = ", ".join(sorted(command.list_commands(context)))
                return f"`{path}` has no command {word!r} (it has: {known})"
            command, path = sub, f"{path} {word}"
            context = click.Context(sub, info_name=word, parent=context)
    return None


def _check_option(
    command: click.Command, context: click.Context, path: str, word: str, pending: Iterator[str]
) -> str | None:
    name = word.split("=", 1)[0]
    params = [p for p in command.get_params(context) if isinstance(p, click.Option)]
    for param in params:
        if name in param.opts:
            if not (param.is_flag or param.count or "=" in word):
                for _ in range(param.nargs):
                    next(pending, None)
            return None
        if name in param.secondary_opts:
            return None
    known = ", ".join(sorted(opt for p in params for opt in (*p.opts, *p.secondary_opts)))
    return f"`{path}` has no option {name!r} (it has: {known})"


# --- the tests --------------------------------------------------------------------------


def _ids(items: list[Block] | list[Commands]) -> list[str]:
    return [item.where for item in items]


PYTHON = blocks_of("python", "py")
SOURCES = [source for source in command_sources() if source.lines]


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_block_compiles_as_a_module(block: Block) -> None:
    try:
        compile(block.body, block.where, "exec", dont_inherit=True)
    except SyntaxError as exc:
        pytest.fail(f"{block.where}: {exc.msg} (line {exc.lineno} of the block)")


@pytest.fixture(scope="module")
def name_problems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Undefined names (F821) and unused imports (F401) of every non-fragment python
    block, by block, from one ruff run."""
    folder = tmp_path_factory.mktemp("snippets")
    files = {}
    for number, block in enumerate(PYTHON):
        if block.marker != "fragment":
            files[f"block_{number}.py"] = block
            (folder / f"block_{number}.py").write_text(block.body + "\n")
    found = _ruff(folder, "F821,F401")
    return {block.where: found.get(name, []) for name, block in files.items()}


def _ruff(folder: Path, rule: str) -> dict[str, list[str]]:
    command = [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--quiet"]
    command += ["--select", rule, "--target-version", "py311", "--output-format", "json"]
    done = subprocess.run([*command, str(folder)], capture_output=True, text=True, check=False)
    if "No module named ruff" in done.stderr:
        pytest.skip("ruff (atp's lint extra) is not installed")
    assert done.returncode in (0, 1), f"ruff failed: {done.stderr}"  # 1: it found something
    found: dict[str, list[str]] = {}
    for item in json.loads(done.stdout or "[]"):
        line = item["location"]["row"]
        found.setdefault(Path(item["filename"]).name, []).append(f"line {line}: {item['message']}")
    return found


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_block_defines_every_name_it_uses(
    block: Block, name_problems: dict[str, list[str]]
) -> None:
    if block.marker == "fragment":
        pytest.skip("marked <!-- snippet: fragment -->: compiled only")
    problems = name_problems[block.where]
    assert not problems, f"{block.where} (lines of the block): " + "; ".join(problems)


DATA = blocks_of("json", "toml", "yaml", "yml")


@pytest.mark.parametrize("block", DATA, ids=_ids(DATA))
def test_data_block_parses(block: Block) -> None:
    if block.lang == "toml":
        tomllib.loads(block.body)
    elif block.lang == "json":
        _parse_json(block.body)
    else:
        yaml.safe_load(block.body)


def _parse_json(text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError:  # JSON Lines: one value a line
        for line in filter(str.strip, text.splitlines()):
            json.loads(line)


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_atp_commands_exist_with_their_options(source: Commands) -> None:
    problems = [problem for line in source.lines for problem in _line_problems(line)]
    assert not problems, f"{source.where}: " + "; ".join(problems)


def _line_problems(line: str) -> list[str]:
    try:
        invocations = list(atp_invocations(line))
    except ValueError as exc:  # an unclosed quote
        return [f"{line!r} is not a shell line: {exc}"]
    return [f"{line!r}: {found}" for words in invocations if (found := check_invocation(words))]


def _run_block(run: Run, heading: str | None = None) -> Block:
    """The one python block of the section ``heading`` (the run's own by default)."""
    heading = heading or run.heading
    found = [
        block
        for block in blocks_of("python")
        if block.path == ROOT / run.page and block.heading == heading
    ]
    assert len(found) == 1, f"{run.page} '{heading}': {len(found)} python blocks, want 1"
    return found[0]


@pytest.mark.parametrize("run", RUNS, ids=[f"{run.page}:{run.heading}" for run in RUNS])
def test_program_block_runs(run: Run, tmp_path: Path) -> None:
    block = _run_block(run)
    for name, text in run.support:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for name, heading in run.modules:
        (tmp_path / name).write_text(_run_block(run, heading).body + "\n")
    done = _execute(block, run, tmp_path)
    output = f"{done.stdout}\n{done.stderr}".strip()
    assert done.returncode == 0, f"{block.where} failed (exit {done.returncode}):\n{output}"


def _execute(block: Block, run: Run, folder: Path) -> subprocess.CompletedProcess[str]:
    is_test = TESTS.search(block.body) is not None
    script = folder / ("test_snippet.py" if is_test else "snippet.py")
    script.write_text(block.body + "\n")
    command = [sys.executable, str(script)]
    if is_test:
        # Strict mode, the most demanding: what passes there passes in auto mode too.
        (folder / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        )
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            str(script),
        ]
    return subprocess.run(
        command,
        cwd=folder,
        env=_environment(folder, run.needs_repo),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


ISOLATED = ("ATP_", "PYTEST_ADDOPTS")
"""Variables of this process a snippet must not inherit: its settings, its pytest options."""


def _environment(folder: Path, needs_repo: bool) -> dict[str, str]:
    """This process's environment without ``ISOLATED``, on a SQLite file in ``folder``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(ISOLATED)}
    env["ATP_STORE"] = f"sqlite:///{folder}/atp.db"
    env["PYTHONPATH"] = os.pathsep.join([str(folder), *([str(ROOT)] if needs_repo else [])])
    return env


# --- the checker itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("atp dlq list --subject S", "has no command 'list'"),
        ("atp task ls --no-such-option", "has no option '--no-such-option'"),
        ("atp --log-format json worker app:app --nope", "has no option '--nope'"),
        ("atp task get|cancel|fetch", "has no command 'fetch'"),
    ],
)
def test_the_command_check_names_what_is_wrong(line: str, problem: str) -> None:
    (found,) = filter(None, (check_invocation(w) for w in atp_invocations(line)))
    assert problem in found


@pytest.mark.parametrize(
    ("line", "runs"),
    [
        ("atp task get <id>            # state, attempts", 1),
        ("atp dlq ls --ids | atp dlq requeue -", 2),
        ("ATP_STORE=sqlite:///x.db atp publish a.b '{\"x\": 1}' --delay 30s", 1),
        ("atp workflow register - < signup.json", 1),
        ("atp --log-format json ...", 1),
        ("atp dlq requeue ID [--delay 5m] [--payload JSON]", 1),
        ("atp task get|cancel|ls", 3),
    ],
)
def test_the_command_check_accepts_what_the_docs_write(line: str, runs: int) -> None:
    invocations = list(atp_invocations(line))
    assert len(invocations) == runs
    assert [check_invocation(words) for words in invocations] == [None] * runs


def test_a_top_level_await_does_not_compile() -> None:
    with pytest.raises(SyntaxError):
        compile("async with x() as y:\n    pass\n", "snippet", "exec", dont_inherit=True)


def test_every_run_names_one_block() -> None:
    for run in RUNS:
        assert _run_block(run).marker != "fragment", f"{run.page} '{run.heading}' is run"


def test_a_page_is_read_into_blocks_with_their_section_and_marker(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Run it\n\n<!-- snippet: fragment -->\n```python\nx = 1\n```\n\n"
        "Then `atp dev`.\n"
    )
    (block,), prose = read_page(page)
    assert (block.line, block.lang, block.heading, block.marker) == (
        6,
        "python",
        "Run it",
        "fragment",
    )
    assert block.body == "x = 1"
    assert "`atp dev`" in prose
    assert "x = 1" not in prose


def test_ruff_reports_a_missing_import(tmp_path: Path) -> None:
    (tmp_path / "block.py").write_text("import os\n\nprint(Client)\n")
    (problems,) = _ruff(tmp_path, "F821,F401").values()
    assert problems == [
        "line 1: `os` imported but unused",
        "line 3: Undefined name `Client`",
    ]
