"""Logging for atp processes: text for people or JSON lines for collectors, on stderr."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import TypeAlias

from atp.adapters.cli._output import iso, json_text
from atp.core.context import TaskLogFilter
from atp.core.errors import ConfigError
from atp.core.model import TRACEBACK_LIMIT
from atp.core.quoting import cut
from atp.core.settings import Settings

__all__ = ["configure_logging"]

ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
TASK_FIELDS = ("task_id", "subject", "attempt", "trace_id", "kind")
"""Fields the JSON lines carry when a record has them: the task's, and a failed
attempt's error ``kind``."""


class StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    A ``StreamHandler`` keeps the stream it was made with, which breaks when the stream is
    swapped (click's test runner does) or closed.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _format_exception(formatter: logging.Formatter, exc_info: ExcInfo) -> str:
    """The traceback of ``exc_info``, cut like a stored one (a handler's 5 MB message
    makes no 5 MB line), or a note when formatting it raises: the line is logged."""
    try:
        text = logging.Formatter.formatException(formatter, exc_info)
    except BaseException as exc:  # formatting the exception must not lose the line
        return f"<traceback unavailable: {type(exc).__name__}>"
    return cut(text, TRACEBACK_LIMIT)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601 UTC), level, logger, message, exc (the
    traceback), and task_id, subject, attempt and trace_id on the lines of a task's
    attempt, with kind on a failed attempt's."""

    def formatException(self, ei: ExcInfo) -> str:
        return _format_exception(self, ei)

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in TASK_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json_text(line)


class UtcFormatter(logging.Formatter):
    """The text format, with times in ISO 8601 UTC like everything else atp prints."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso(record.created)

    def formatException(self, ei: ExcInfo) -> str:
        return _format_exception(self, ei)


def configure_logging(settings: Settings, *, quiet: bool = False) -> None:
    """Send every logger's records at ``settings.log_level`` or above to stderr.

    ``quiet`` (the short commands) raises the default INFO to WARNING, so only trouble
    shows beside a command's output; DEBUG stays DEBUG. Calling it again replaces the
    handler it installed before, and only that one.
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        raise ConfigError(
            f"setting 'log_level' must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
            f"got {settings.log_level!r}"
        )
    if quiet and level == logging.INFO:
        level = logging.WARNING
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    handler = StderrHandler()
    handler.addFilter(TaskLogFilter())
    json_lines = settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else UtcFormatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
