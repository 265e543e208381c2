"""Logging for atp processes: text for people or JSON lines for collectors, on stderr."""

from __future__ import annotations

import logging
import sys

from atp.adapters.cli._output import iso, json_text
from atp.core.context import TaskLogFilter
from atp.core.errors import ConfigError
from atp.core.settings import Settings

__all__ = ["configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
TASK_FIELDS = ("task_id", "subject", "attempt", "trace_id")


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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601 UTC), level, logger, message, exc, and
    task_id, subject, attempt and trace_id on the lines of a task's attempt."""

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
