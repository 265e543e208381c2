"""JSON log lines carry the task, its attempt and its trace while an attempt runs."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from atp.adapters.cli._logging import configure_logging
from atp.adapters.cli._main import cli
from atp.core.context import TaskLogFilter, trace_id
from atp.core.settings import Settings
from atp.sdk import App
from atp.sdk.testing import TestPlatform

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def json_logs():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging(Settings(log_format="json", log_level="INFO"))
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_a_handlers_log_line_names_its_task(json_logs, capsys):
    app = App()

    @app.task("mail.send")
    async def send() -> None:
        logging.getLogger("app.mail").info("sending")

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("mail.send", headers={"traceparent": TRACEPARENT})
        await tp.wait(published.id)
    logging.getLogger("app.mail").info("after the attempt")
    during, after = [
        line for line in lines(capsys.readouterr().err) if line["logger"] == "app.mail"
    ]
    assert during["message"] == "sending"
    assert (during["task_id"], during["subject"], during["attempt"], during["trace_id"]) == (
        published.id,
        "mail.send",
        1,
        TRACE,
    )
    assert during["level"] == "INFO"
    assert str(during["ts"]).endswith("Z")
    assert "task_id" not in after
    assert "trace_id" not in after


async def test_a_sync_handlers_log_line_names_its_task_too(json_logs, capsys):
    app = App()

    @app.task("mail.sync")
    def send() -> None:
        logging.getLogger("app.mail").warning("from a thread")

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("mail.sync")
        await tp.wait(published.id)
    (line,) = [line for line in lines(capsys.readouterr().err) if line["logger"] == "app.mail"]
    assert (line["task_id"], line["attempt"]) == (published.id, 1)
    assert "trace_id" not in line  # no traceparent header, no trace


def test_the_filter_never_drops_and_leaves_fields_empty_outside_an_attempt():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert TaskLogFilter().filter(record)
    assert (record.task_id, record.subject, record.attempt, record.trace_id) == (None,) * 4


def test_a_callers_extra_field_is_kept():
    record = logging.getLogger("x").makeRecord(
        "x", logging.INFO, __file__, 1, "m", (), None, extra={"subject": "mine"}
    )
    TaskLogFilter().filter(record)
    assert (record.subject, record.task_id) == ("mine", None)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, TRACE),
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_trace_id_reads_a_w3c_traceparent(header: str, expected: str | None):
    assert trace_id({"traceparent": header} if header else {}) == expected


def test_log_format_is_a_global_option(monkeypatch):
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        result = CliRunner().invoke(cli, ["--log-format", "xml", "plugins"])
        assert result.exit_code == 2
        assert "'xml' is not one of" in result.output
        monkeypatch.setenv("ATP_LOG_FORMAT", "yaml")
        result = CliRunner().invoke(cli, ["plugins"])
        assert result.exit_code == 5
    finally:
        root.handlers[:] = handlers
