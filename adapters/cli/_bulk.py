"""``atp publish --file``: tasks from JSON Lines, published in batches over one platform.

The input is streamed: each line is read, parsed and checked as it comes, and the good
ones are published in batches of up to ``MAX_BATCH`` tasks (or ``BATCH_BYTES`` of
text), so a file of ten million lines needs the memory of one batch. A line that fails
goes to the report with its number and error; the other lines carry on. The report is
JSON Lines itself, each failed line as it was plus a ``"_failed"`` member, so after a
fix it can be published again with ``--file`` (``_failed`` is ignored there).

A backend that is unavailable fails its batch, and the run carries on: an outage of a
moment costs one batch. After ``GIVE_UP_AFTER`` refused batches in a row the rest is
still read and checked, but goes to the report untried, so a dead backend does not
cost a timeout per batch of a long file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from atp.adapters.cli._context import Options
from atp.adapters.cli._errors import EXIT_FAILURE, EXIT_UNAVAILABLE
from atp.adapters.cli._output import echo_json, is_terminal, json_text, progress
from atp.adapters.cli._params import TIMESTAMP
from atp.core import codec
from atp.core.errors import (
    AtpError,
    BackendUnavailable,
    IdempotencyConflict,
    InvalidInput,
    KeyActive,
    KeyConflict,
)
from atp.core.quoting import hint, quote
from atp.core.service import MAX_BATCH, Published, PublishRequest, TaskService
from atp.sdk.client import PublishOptions, publish_request

__all__ = ["BATCH_BYTES", "Defaults", "publish_file"]

BATCH_BYTES = 8 * 2**20
"""Most line text in one batch: ten thousand 1 MiB payloads would not fit in memory."""
GIVE_UP_AFTER = 3
"""Consecutive batches refused by an unavailable backend before the rest is not tried."""
FAILED = "_failed"
"""The member a report line adds: ``{"line": N, "error": "..."}`` (and ``"text"``)."""
OPTIONS = (
    "delay",
    "run_at",
    "idempotency_key",
    "headers",
    "max_attempts",
    "timeout",
    "priority",
    "concurrency_key",
    "rate_key",
    "group_key",
)
DEDUP_OPTIONS = ("debounce", "throttle", "unique")
"""The command line's dedup options, which a line's ``dedup`` replaces."""
FIELDS = frozenset({"subject", "payload", "dedup", FAILED, *OPTIONS})

Advance = Callable[[int], None]


@dataclass(frozen=True)
class Defaults:
    """What the command line gives every line; a line's own fields override them."""

    subject: str | None = None
    options: PublishOptions = field(default_factory=lambda: PublishOptions())


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the input: its number, its text, and its JSON object if it is one."""

    number: int
    text: str
    fields: dict[str, Any] | None = None
    error: str | None = None
    """Why the line could not even be read as text."""


Item = tuple[Line, PublishRequest]
"""A good line and the request it asks for."""


@dataclass
class Tally:
    """What a run did, for the summary."""

    lines: int = 0
    """Lines read that are not blank."""
    last: int = 0
    """The number of the last line read."""
    published: int = 0
    existing: int = 0
    uncertain: int = 0
    """Lines published beside a key conflict: whether each was new, the error does not say."""
    failed: int = 0
    unavailable: int = 0
    interrupted: bool = False
    started: float = field(default_factory=time.perf_counter)

    @property
    def exit_code(self) -> int:
        """0 all published; 6 some not, a backend being unavailable; 1 some failed."""
        if self.unavailable:
            return EXIT_UNAVAILABLE
        return EXIT_FAILURE if self.failed else 0


class Report:
    """The failed lines, written as they fail; the file is made at the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def check(self) -> None:
        """Refuse, before anything is read, a report that could not be written."""
        folder = self.path.parent
        writable = os.access(self.path if self.path.exists() else folder, os.W_OK)
        if self.path.is_dir() or not folder.is_dir() or not writable:
            raise InvalidInput(f"cannot write the report to {self.path}: name another --failed")

    def add(self, line: Line, error: str) -> None:
        """Write ``line`` with its number and ``error``, in a form ``--file`` reads again."""
        failed: dict[str, Any] = {"line": line.number, "error": error}
        if line.fields is None:
            body: dict[str, Any] = {FAILED: {**failed, "text": line.text}}
        else:
            body = {**line.fields, FAILED: failed}
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        self._file.write(json_text(body) + "\n")

    def close(self, *, finished: bool) -> None:
        """Close the file. A run that ``finished`` with no line failed removes the report an
        earlier run left there, so a report always holds the failures of the last run."""
        if self._file is not None:
            self._file.close()
        elif finished and self.path.is_file():
            self.path.unlink()


def report_path(source: str, failed: str | None) -> Path:
    """Where the report goes: ``--failed``, else beside the input as ``NAME.failed.jsonl``."""
    if failed is not None:
        return Path(failed)
    if source == "-":
        raise InvalidInput("--file - needs --failed FILE: where to write the lines that fail")
    path = Path(source)
    stem = path.stem if path.suffix in (".jsonl", ".ndjson", ".json") else path.name
    return path.with_name(f"{stem}.failed.jsonl")


def count_lines(path: str) -> int | None:
    """The number of lines in a regular file (cheap: bytes counted); None for others."""
    if path == "-" or not os.path.isfile(path):
        return None
    count, last = 0, b"\n"
    with open(path, "rb") as stream:
        while chunk := stream.read(2**20):
            count, last = count + chunk.count(b"\n"), chunk[-1:]
    return count + (last != b"\n")


def read_lines(stream: IO[bytes]) -> Iterator[Line]:
    """The lines of ``stream``, numbered from 1, without their ends (or a leading BOM)."""
    for number, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            error = f"not UTF-8: {exc.reason} at byte {exc.start}"
            yield Line(number, raw.decode("utf-8", errors="replace").strip(), error=error)
            continue
        yield Line(number, text.lstrip("\ufeff") if number == 1 else text)


def decoded(line: Line) -> Line:
    """``line`` with its JSON object; InvalidInput if it holds none. A report line of a
    line that was not an object (``{"_failed": {"text": ...}}``) is read as that text."""
    value = codec.loads(line.text)
    if isinstance(value, dict) and set(value) == {FAILED}:
        failed = value[FAILED]
        if isinstance(failed, dict) and isinstance(failed.get("text"), str):
            return decoded(Line(line.number, failed["text"]))
    if not isinstance(value, dict):
        raise InvalidInput(f"a line must be a JSON object, got {json_text(value)[:40]}")
    return Line(line.number, line.text, value)


def request(fields: dict[str, Any], defaults: Defaults) -> PublishRequest:
    """The request of one line's ``fields`` over ``defaults``, through ``publish_request``.

    A field that is null counts as left out: the default applies.
    """
    if not FIELDS.issuperset(fields):
        unknown = min(fields.keys() - FIELDS)
        raise InvalidInput(f"unknown field {unknown!r}{hint(unknown, FIELDS - {FAILED})}")
    fields = {name: value for name, value in fields.items() if value is not None}
    subject = fields.get("subject", defaults.subject)
    if subject is None:
        raise InvalidInput("no subject: give one on the line or as the SUBJECT argument")
    options: dict[str, Any] = dict(defaults.options)
    if "delay" in fields or "run_at" in fields:  # a line's timing replaces the default one
        options.pop("delay", None)
        options.pop("run_at", None)
    options.update((name, fields[name]) for name in OPTIONS if name in fields)
    options["run_at"] = _instant(options.get("run_at"))
    options["headers"] = _headers(defaults.options.get("headers"), fields.get("headers"))
    if "dedup" not in fields:
        return publish_request(subject, fields.get("payload"), **options)
    dedup = codec.dedup_from_dict(fields["dedup"])
    for name in DEDUP_OPTIONS:  # a line's dedup replaces the default one
        options.pop(name, None)
    found = publish_request(subject, fields.get("payload"), **options)
    return dataclasses.replace(found, dedup=dedup)


def _instant(value: object) -> object:
    """An ISO 8601 text as the seconds ``--at`` reads it to; anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        return TIMESTAMP.parse(value)
    except InvalidInput as exc:
        raise InvalidInput(f"run_at: {exc.message}") from None


def _headers(default: Mapping[str, str] | None, given: object) -> dict[str, Any]:
    """The default headers with a line's own over them (a line's win, name by name)."""
    if given is not None and not isinstance(given, dict):
        raise InvalidInput(f"headers must be an object of strings, got {json_text(given)[:40]}")
    return {**(default or {}), **(given or {})}


def batches(
    lines: Iterator[Line], defaults: Defaults, failed: Callable[[Line, str], None]
) -> Iterator[list[Item]]:
    """Batches of the good lines; a bad one goes to ``failed`` with its error as it is read."""
    batch: list[Item] = []
    size = 0
    for line in lines:
        if line.error is not None:
            failed(line, line.error)
            continue
        try:
            line = decoded(line)
            item = request(line.fields or {}, defaults)
        except InvalidInput as exc:
            failed(line, exc.message)
            continue
        batch.append((line, item))
        size += len(line.text)
        if len(batch) >= MAX_BATCH or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@dataclass
class Run:
    """One ``--file`` run: publishes batches over one TaskService, counting what happens."""

    service: TaskService
    report: Report
    tally: Tally
    advance: Advance
    as_json: bool
    refused: int = 0
    """Consecutive batches an unavailable backend refused."""
    unsettled: dict[int, Line] = field(default_factory=dict)
    """The lines of the batch in flight neither published nor failed yet, by number."""

    def failed(self, line: Line, error: str) -> None:
        """Write ``line`` to the report."""
        self.unsettled.pop(line.number, None)
        self.report.add(line, error)
        self.tally.failed += 1
        self.advance(1)

    async def publish(self, batch: list[Item]) -> None:
        """Publish ``batch``; the lines that fail go to the report, the others carry on."""
        if self.refused >= GIVE_UP_AFTER:
            self._unavailable(batch, "not tried, the batches before were refused")
            return
        self.unsettled = {line.number: line for line, _ in batch}
        unavailable = self.tally.unavailable
        try:
            await self._publish(batch)
        except BaseException as exc:  # Ctrl-C, or a failure that is no AtpError
            self.tally.interrupted = True
            cancelled = isinstance(exc, asyncio.CancelledError)
            why = "interrupted" if cancelled else f"stopped by {type(exc).__name__}"
            for line in list(self.unsettled.values()):  # the store may have them or not
                self.failed(line, f"{why}: this line may have been published")
            raise
        self.refused = self.refused + 1 if self.tally.unavailable > unavailable else 0

    async def _publish(self, batch: list[Item]) -> None:
        try:
            published = await self.service.publish([item for _, item in batch])
        except IdempotencyConflict as exc:
            await self._conflicted(batch, exc)
        except InvalidInput as exc:
            await self._halve(batch, exc)
        except BackendUnavailable as exc:
            self._unavailable(batch, exc.message)
        except AtpError as exc:
            for line, _ in batch:
                self.failed(line, exc.message)
        else:
            self._published([line for line, _ in batch], published)

    async def _halve(self, batch: list[Item], exc: InvalidInput) -> None:
        """Bad input writes nothing, so a refused batch is halved until its bad lines
        stand alone: a few calls per bad line, never one call per line."""
        if len(batch) == 1:
            self.failed(batch[0][0], exc.message)
            return
        middle = len(batch) // 2
        await self._publish(batch[:middle])
        await self._publish(batch[middle:])

    async def _conflicted(self, batch: list[Item], exc: IdempotencyConflict) -> None:
        """The lines whose key belongs to another task fail; the others were accepted
        (``exc.accepted``), or nothing was written and they are published again."""
        refused = {c.index: c for c in exc.conflicts if 0 <= c.index < len(batch)}
        if not refused:  # no line named: nothing to tell apart
            for line, _ in batch:
                self.failed(line, exc.message)
            return
        for index, conflict in refused.items():
            text = _conflict_text(conflict, batch[index][1], active=isinstance(exc, KeyActive))
            self.failed(batch[index][0], text)
        rest = [(i, item) for i, item in enumerate(batch) if i not in refused]
        if exc.accepted:
            self._accepted([(line, exc.accepted[i]) for i, (line, _) in rest])
        elif rest:
            await self._publish([item for _, item in rest])

    def _published(self, lines: list[Line], published: list[Published]) -> None:
        for line, result in zip(lines, published, strict=True):
            self._show(line, result.id, result.created, result.run_at)
        self.tally.published += len(published)
        self.tally.existing += sum(not result.created for result in published)
        self._settled(lines)

    def _accepted(self, accepted: list[tuple[Line, str | None]]) -> None:
        """Lines a conflict elsewhere in their batch left accepted: whether each was
        created, and when it runs, the error does not say."""
        for line, task_id in accepted:
            self._show(line, task_id, None, None)
        self.tally.published += len(accepted)
        self.tally.uncertain += len(accepted)
        self._settled([line for line, _ in accepted])

    def _show(
        self, line: Line, task_id: str | None, created: bool | None, run_at: float | None
    ) -> None:
        if self.as_json:
            echo_json({"line": line.number, "id": task_id, "created": created, "run_at": run_at})

    def _settled(self, lines: list[Line]) -> None:
        for line in lines:
            self.unsettled.pop(line.number, None)
        self.advance(len(lines))

    def _unavailable(self, batch: list[Item], error: str) -> None:
        self.tally.unavailable += len(batch)
        for line, _ in batch:
            self.failed(line, f"backend unavailable: {error}")


def _conflict_text(conflict: KeyConflict, request: PublishRequest, *, active: bool) -> str:
    key, fields = quote(request.idempotency_key), ", ".join(conflict.fields)
    if active:
        return f"unique key {key} is held by task {conflict.task_id}, still queued or running"
    if conflict.task_id is None:
        return f"idempotency key {key} repeats an earlier line's with another {fields}"
    return (
        f"idempotency key {key} belongs to task {conflict.task_id}, published with another {fields}"
    )


async def publish_lines(
    service: TaskService,
    lines: Iterator[Line],
    defaults: Defaults,
    report: Report,
    tally: Tally,
    advance: Advance,
    *,
    as_json: bool,
) -> None:
    """Publish every good line of ``lines`` over ``service``; the rest go to ``report``."""
    run = Run(service, report, tally, advance, as_json)
    for batch in batches(_counted(lines, tally, advance), defaults, run.failed):
        await run.publish(batch)


def _counted(lines: Iterator[Line], tally: Tally, advance: Advance) -> Iterator[Line]:
    """The lines that are not blank, counted; a blank one only moves the progress bar."""
    for line in lines:
        tally.last = line.number
        if not line.text:
            advance(1)
            continue
        tally.lines += 1
        yield line


def summary(tally: Tally, report: Report) -> str:
    """The lines printed on stderr at the end: counts, the report, duration and rate."""
    seconds = time.perf_counter() - tally.started
    rate = tally.lines / seconds if seconds > 0 else 0.0
    existing = f"{tally.existing} existing: their idempotency key matched"
    if tally.uncertain:
        existing += f"; {tally.uncertain} of them beside a key conflict, new or existing"
    lines = [
        f"published {tally.published} of {tally.lines} lines ({existing}) "
        f"in {seconds:.2f}s, {rate:,.0f} lines/s"
    ]
    if tally.failed:
        why = f" ({tally.unavailable} as a backend was unavailable)" if tally.unavailable else ""
        lines.append(
            f"failed {tally.failed} -> {report.path}{why}; "
            f"fix them and run: atp publish --file {report.path}"
        )
    if tally.interrupted:
        lines.append(f"interrupted: lines after line {tally.last} were not read")
    return "\n".join(lines)


def summary_json(tally: Tally, report: Report) -> dict[str, Any]:
    """The summary as the last JSON line of ``--json``."""
    seconds = time.perf_counter() - tally.started
    return {
        "summary": {
            "lines": tally.lines,
            "published": tally.published,
            "existing": tally.existing,
            "uncertain": tally.uncertain,
            "failed": tally.failed,
            "unavailable": tally.unavailable,
            "report": str(report.path) if tally.failed else None,
            "seconds": round(seconds, 3),
        }
    }


@contextmanager
def open_input(source: str) -> Iterator[IO[bytes]]:
    """The input as bytes: the file, or stdin (left open) for ``-``."""
    if source == "-":
        yield sys.stdin.buffer
        return
    with open(source, "rb") as stream:
        yield stream


def publish_file(
    options: Options, source: str, failed: str | None, defaults: Defaults, *, as_json: bool
) -> int:
    """Publish the tasks of ``source`` (``-``: stdin) over one platform; the exit code."""
    report = Report(report_path(source, failed))
    if source != "-" and report.path.resolve() == Path(source).resolve():
        raise InvalidInput(f"--failed {report.path} is the input file: name another")
    report.check()
    tally = Tally()
    total = count_lines(source) if is_terminal(sys.stderr) else None  # only a bar needs it
    with open_input(source) as stream, progress(total, "publishing") as advance:
        lines = read_lines(stream)
        try:
            options.call(
                lambda service: publish_lines(
                    service, lines, defaults, report, tally, advance, as_json=as_json
                )
            )
        except BaseException:
            report.close(finished=False)
            if tally.lines:  # say what was done before it stopped
                tally.interrupted = True
                click.echo(summary(tally, report), err=True)
            raise
    report.close(finished=True)
    click.echo(summary(tally, report), err=True)
    if as_json:
        echo_json(summary_json(tally, report))
    return tally.exit_code
