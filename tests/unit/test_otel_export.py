"""Span export never holds atp up: a one-shot command gives an unreachable collector no
retries and a bounded exit, and the exporters' failures make one warning, not a stream."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from atp.adapters.cli._context import Options
from atp.core.clock import ManualClock
from atp.core.platform import Platform
from atp.core.settings import Settings
from atp.plugins.otel._export import (
    EXPORTER_LOGGERS,
    LONG_RUNNING,
    SHORT_LIVED,
    BoundedBatchSpanProcessor,
    budget_for,
    collector_endpoint,
    install_warnings,
    remove_warnings,
)
from atp.plugins.otel._setup import sdk_provider

HTTP_LOGGER = EXPORTER_LOGGERS[0]


@pytest.fixture(autouse=True)
def no_filters_left() -> Iterator[None]:
    yield
    remove_warnings()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: every connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class Records(logging.Filter):
    """Keeps every record a logger handles; added before others, it sees them all."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return True


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def shown() -> Iterator[Kept]:
    """The records the exporter loggers let through to handlers."""
    kept = Kept()
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    for logger in loggers:
        logger.addHandler(kept)
    yield kept
    for logger in loggers:
        logger.removeHandler(kept)


# -- which budget ----------------------------------------------------------------------


def test_a_process_is_long_running_unless_the_cli_says_short_lived() -> None:
    assert budget_for(Settings()) is LONG_RUNNING
    short = Settings(extra={"process": {"short_lived": True}})
    assert budget_for(short) is SHORT_LIVED
    assert budget_for(Settings(extra={"process": {"short_lived": "true"}})) is SHORT_LIVED
    assert budget_for(Settings(extra={"process": {"short_lived": "false"}})) is LONG_RUNNING


def test_the_cli_one_shot_commands_run_on_short_lived_settings() -> None:
    async def settings_of(platform: Platform) -> Settings:
        return platform.settings

    options = Options(overrides={"store": "memory://", "transport": "memory://"})
    assert budget_for(options.on_platform(settings_of)) is SHORT_LIVED


def test_the_short_budget_gives_up_before_the_first_backoff() -> None:
    # The OTLP exporters' first retry waits 2**0 * (1 +- 0.2) s: an export timeout under
    # that gives up instead of waiting, and the exit waits for that one attempt.
    assert SHORT_LIVED.export_timeout is not None
    assert SHORT_LIVED.export_timeout < 0.8
    assert SHORT_LIVED.exit_timeout < LONG_RUNNING.exit_timeout
    assert SHORT_LIVED.reminder is None


# -- a real OTLP/HTTP exporter, nothing listening ---------------------------------------


def test_a_one_shot_exit_does_not_retry_an_unreachable_collector(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, shown: Kept
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{endpoint}/v1/traces")
    provider = sdk_provider({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}, SHORT_LIVED)
    (processor,) = processors(provider)
    assert isinstance(processor, BoundedBatchSpanProcessor)
    assert processor.exit_timeout == SHORT_LIVED.exit_timeout
    seen = Records()
    logging.getLogger(HTTP_LOGGER).filters.insert(0, seen)
    try:
        provider.get_tracer("test").start_span("create x").end()
        provider.shutdown()
    finally:
        logging.getLogger(HTTP_LOGGER).removeFilter(seen)
    said = [r.getMessage() for r in seen.records]
    assert said
    assert not [m for m in said if "retrying" in m], said
    (warning,) = shown.records
    assert warning.getMessage().startswith(f"OTLP collector at {endpoint} is unreachable")


def test_a_long_running_process_keeps_the_exporter_s_own_timeout() -> None:
    provider = sdk_provider({}, LONG_RUNNING)
    (processor,) = processors(provider)
    assert isinstance(processor, BoundedBatchSpanProcessor)
    assert processor.exit_timeout == LONG_RUNNING.exit_timeout
    assert LONG_RUNNING.export_timeout is None
    provider.shutdown()


def test_the_console_exporter_is_not_cut_short() -> None:
    provider = sdk_provider({"OTEL_TRACES_EXPORTER": "console"}, SHORT_LIVED)
    assert not isinstance(processors(provider)[0], BoundedBatchSpanProcessor)
    provider.shutdown()


def processors(provider: TracerProvider) -> Sequence[object]:
    return provider._active_span_processor._span_processors  # the SDK keeps no public list


# -- the exit waits exit_timeout at most -------------------------------------------------


def test_shutdown_returns_while_the_sdk_s_shutdown_still_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK's shutdown waits up to 30 s for its export thread; here it waits until the
    # test lets it, so only a bounded wait around it returns.
    entered, release = threading.Event(), threading.Event()

    def waiting(self: BatchSpanProcessor) -> None:
        entered.set()
        release.wait()

    monkeypatch.setattr(BatchSpanProcessor, "shutdown", waiting)
    processor = BoundedBatchSpanProcessor(InMemorySpanExporter(), exit_timeout=0.01)
    closing = threading.Thread(target=processor.shutdown, daemon=True)
    closing.start()
    try:
        assert entered.wait(60)
        closing.join(60)  # a hang guard only
        assert not closing.is_alive()
        assert not release.is_set()
    finally:
        release.set()


# -- warn once ------------------------------------------------------------------------------


def fail(times: int) -> None:
    logger = logging.getLogger(HTTP_LOGGER)
    for n in range(times):
        logger.warning("Transient error %s encountered, retrying in %.2fs.", f"refused {n}", 1.0)


def test_many_failures_make_one_plain_warning(shown: Kept) -> None:
    install_warnings("http://collector:4318", reminder=None, clock=ManualClock())
    fail(7)
    logging.getLogger(HTTP_LOGGER).error("Failed to export spans batch due to timeout.")
    (record,) = shown.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "OTLP collector at http://collector:4318 is unreachable; spans are being dropped; "
        "atp keeps working (Transient error refused 0 encountered, retrying in 1.00s.)"
    )


async def test_a_long_running_process_is_reminded_now_and_then(shown: Kept) -> None:
    clock = ManualClock()
    install_warnings("http://collector:4318", reminder=600.0, clock=clock)
    fail(3)
    await clock.jump(599)
    fail(1)
    assert len(shown.records) == 1
    await clock.jump(1)
    fail(2)
    _, reminder = shown.records
    assert reminder.getMessage().startswith(
        "OTLP collector at http://collector:4318 is still unreachable; spans are being "
        "dropped (3 more export failures not shown; latest: Transient error refused 0"
    )


def test_debug_records_pass_and_installing_twice_keeps_one_filter(shown: Kept) -> None:
    install_warnings("a", None)
    install_warnings("b", None)
    logger = logging.getLogger(HTTP_LOGGER)
    assert len(logger.filters) == 1
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("exporting %d spans", 3)
    finally:
        logger.setLevel(logging.NOTSET)
    assert [r.getMessage() for r in shown.records] == ["exporting 3 spans"]


def test_the_endpoint_shown_is_the_one_used_with_its_password_masked() -> None:
    assert collector_endpoint({}, "http/protobuf") == "http://localhost:4318"
    assert collector_endpoint({}, "grpc") == "http://localhost:4317"
    traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://u:secret@c:4318/v1/traces"}
    shown = collector_endpoint({**traces, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"}, "grpc")
    assert "secret" not in shown
    assert shown.endswith("@c:4318/v1/traces")
