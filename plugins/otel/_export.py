"""Exporting spans without ever holding atp up: bounded waits, and one warning, not a stream.

A collector that does not answer must cost a process nothing it would notice. Spans are
exported by the batch processor's own thread, so a long-running process (worker,
scheduler, server) only has its exit to protect; a short command (``atp publish``) exports
its few spans at exit, so its exit budget is the whole story. The OTLP exporters log a
warning per failed attempt and per retry; ``ExportWarnings`` turns that into one plain
warning (and a reminder now and then in a process that lives long).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from atp.core.clock import SystemClock
from atp.core.ports import Clock
from atp.core.settings import Settings
from atp.core.urls import mask

__all__ = [
    "LONG_RUNNING",
    "SHORT_LIVED",
    "BoundedBatchSpanProcessor",
    "Budget",
    "ExportWarnings",
    "budget_for",
    "collector_endpoint",
    "install_warnings",
    "remove_warnings",
]

EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.common.http",
)
"""The loggers the OTLP span exporters report failed exports and retries on."""

PROCESS_TABLE = "process"
"""The settings table (``settings.extra``) the CLI describes its process in."""


@dataclass(frozen=True)
class Budget:
    """How long a process lets its span export take."""

    export_timeout: float | None
    """Seconds one export (its retries included) may take; None: the exporter's own
    default (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``, else 10 s)."""
    exit_timeout: float
    """Seconds the process waits at exit for the spans still queued; what is not out by
    then is dropped."""
    reminder: float | None
    """Seconds between reminders that the collector is still unreachable; None: warn once."""


SHORT_LIVED = Budget(export_timeout=0.5, exit_timeout=1.0, reminder=None)
"""A one-shot command: under the exporters' first back-off (0.8 s at least), so an
unreachable collector is given up at once instead of retried, and a slow one for half a
second; a collector that answers takes milliseconds."""

LONG_RUNNING = Budget(export_timeout=None, exit_timeout=5.0, reminder=600.0)
"""A worker, scheduler or server: exports retry in the background as long as the exporter
likes, the exit waits 5 s at most, and an unreachable collector is recalled every 10 min."""


def budget_for(settings: Settings) -> Budget:
    """The budget of this process: ``SHORT_LIVED`` when the CLI says it runs a one-shot
    command (``[atp.process] short_lived``), else ``LONG_RUNNING`` (an application using
    the SDK client is assumed to live long)."""
    table: Mapping[str, Any] = settings.extra.get(PROCESS_TABLE, {})
    flag = table.get("short_lived", False)
    short = flag.strip().lower() in ("1", "true", "yes") if isinstance(flag, str) else bool(flag)
    return SHORT_LIVED if short else LONG_RUNNING


class BoundedBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` whose shutdown (at exit) waits ``exit_timeout`` at most.

    The SDK's own shutdown waits up to 30 s for its thread to export what is queued, each
    batch with the exporter's full retry budget. Here that shutdown runs in a daemon
    thread of its own, and the caller stops waiting for it after ``exit_timeout``:
    spans not exported by then are dropped with the process.
    """

    def __init__(self, exporter: SpanExporter, exit_timeout: float) -> None:
        super().__init__(exporter)
        self.exit_timeout = exit_timeout

    def shutdown(self) -> None:
        closing = threading.Thread(target=super().shutdown, name="atp-otel-shutdown", daemon=True)
        closing.start()
        closing.join(self.exit_timeout)


class ExportWarnings(logging.Filter):
    """Lets the first failed-export record of the OTLP exporters through, reworded into one
    plain warning, and drops the rest; with ``reminder``, one more every ``reminder``
    seconds, saying how many were dropped. Records below WARNING pass unchanged."""

    def __init__(self, endpoint: str, reminder: float | None, clock: Clock | None = None) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._reminder = reminder
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._warned_at: float | None = None
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        with self._lock:
            now, warned_at = self._clock.now(), self._warned_at
            if warned_at is not None and not self._due(now, warned_at):
                self._dropped += 1
                return False
            dropped, self._warned_at, self._dropped = self._dropped, now, 0
        self._reword(record, warned_at is None, dropped)
        return True

    def _due(self, now: float, warned_at: float) -> bool:
        """Whether a reminder is due, ``reminder`` seconds after the last warning."""
        return self._reminder is not None and now - warned_at >= self._reminder

    def _reword(self, record: logging.LogRecord, first: bool, dropped: int) -> None:
        cause = record.getMessage()
        if first:
            record.msg = (
                "OTLP collector at %s is unreachable; spans are being dropped; atp keeps "
                "working (%s)"
            )
            record.args = (self._endpoint, cause)
        else:
            record.msg = (
                "OTLP collector at %s is still unreachable; spans are being dropped "
                "(%d more export failures not shown; latest: %s)"
            )
            record.args = (self._endpoint, dropped, cause)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None


def install_warnings(
    endpoint: str, reminder: float | None, clock: Clock | None = None
) -> ExportWarnings:
    """Put one ``ExportWarnings`` on every exporter logger, replacing any earlier one."""
    remove_warnings()
    warnings = ExportWarnings(endpoint, reminder, clock)
    for name in EXPORTER_LOGGERS:
        logging.getLogger(name).addFilter(warnings)
    return warnings


def remove_warnings() -> None:
    for name in EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ExportWarnings)]:
            logger.removeFilter(old)


def collector_endpoint(env: Mapping[str, str], protocol: str) -> str:
    """Where the OTLP span exporter sends, as the warnings show it (password masked)."""
    default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
    found = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or default
    )
    return mask(found.strip())
