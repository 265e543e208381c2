"""``nats://`` URLs, names and ids: what is accepted, and the errors for what is not.

No server is needed here: parsing does no I/O.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import ConfigError, InvalidInput
from atp.core.ids import new_id
from atp.core.model import Task
from atp.core.settings import Settings
from atp.core.subjects import validate_subject
from atp.plugins.nats import parse_url
from atp.plugins.nats._link import consumer_name
from atp.plugins.nats.transport import NatsTransport, message_id

SETTINGS = Settings(lease=30, heartbeat=5, ready_timeout=300)


def test_defaults_follow_the_settings() -> None:
    config = parse_url("nats://127.0.0.1:4222", Settings(lease=12, ready_timeout=60))
    assert config.servers == ("nats://127.0.0.1:4222",)
    assert (config.stream, config.prefix, config.storage, config.replicas) == (
        "ATP",
        "atp",
        "file",
        1,
    )
    assert (config.ack_wait, config.duplicate_window, config.max_age) == (12, 30, 3600)
    assert config.subject("orders.*") == "atp.orders.*"


def test_every_option_is_read() -> None:
    url = (
        "nats://ada:secret@a:4222,b:4223?stream=JOBS&prefix=jobs.eu&storage=memory"
        "&replicas=3&max_age=2h&duplicate_window=30s&ack_wait=1m&max_ack_pending=500"
        "&publish_timeout=250ms&connect_timeout=3"
    )
    config = parse_url(url, SETTINGS)
    assert config.servers == ("nats://ada:secret@a:4222", "nats://b:4223")
    assert "secret" not in config.url
    assert (config.stream, config.prefix, config.storage, config.replicas) == (
        "JOBS",
        "jobs.eu",
        "memory",
        3,
    )
    assert (config.max_age, config.duplicate_window, config.ack_wait) == (7200, 30, 60)
    assert (config.max_ack_pending, config.publish_timeout, config.connect_timeout) == (
        500,
        0.25,
        3,
    )


def test_the_stream_name_follows_the_prefix() -> None:
    assert parse_url("nats://h?prefix=jobs.eu", SETTINGS).stream == "JOBS_EU"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:6379", "must start with 'nats://'"),
        ("nats://h:4222/path", "a path is not allowed"),
        ("nats://a:4222,,b", "no empty server"),
        ("nats://h:notaport", "bad server address"),
        ("nats://h?strem=X", "did you mean 'stream'"),
        ("nats://h?stream=A&stream=B", "given twice"),
        ("nats://h?stream=a.b", "'stream' must be 1 to 64"),
        ("nats://h?prefix=a..b", "empty token"),
        ("nats://h?prefix=a.*", "must match"),
        ("nats://h?storage=disk", "'file' or 'memory'"),
        ("nats://h?replicas=0", "from 1 to 5"),
        ("nats://h?replicas=7", "from 1 to 5"),
        ("nats://h?max_age=soon", "not a duration"),
        ("nats://h?ack_wait=-5s", "must not be negative"),
        ("nats://h?publish_timeout=0", "greater than 0"),
        ("nats://h?max_ack_pending=x", "whole number"),
        ("nats://h?a=1#frag", "fragment"),
    ],
)
def test_a_bad_url_is_refused_by_name(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_url(url, SETTINGS)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://h?ack_wait=5s", "longer than the 'heartbeat' setting"),
        ("nats://h?duplicate_window=10m", "shorter than the 'ready_timeout'"),
        ("nats://h?max_age=1m", "longer than the 'ready_timeout'"),
    ],
)
def test_options_that_would_lose_or_double_work_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(url, SETTINGS)


def test_max_age_zero_keeps_messages_for_ever() -> None:
    assert parse_url("nats://h?max_age=0", SETTINGS).max_age == 0


def test_a_password_never_shows_in_an_error() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_url("nats://ada:secret@h?nope=1", SETTINGS)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("group", "pattern"),
    [
        ("default", ">"),
        ("default", "orders.*"),
        ("a group with spaces/ä", "x.>"),
        ("g" * 300, ".".join(["t"] * 16)),
    ],
)
def test_consumer_names_are_valid_nats_names(group: str, pattern: str) -> None:
    name = consumer_name(group, pattern)
    assert validate_subject(name) == name
    assert "." not in name
    assert len(name) <= 64


def test_consumer_names_keep_lookalike_pairs_apart() -> None:
    pairs = [("g", "a.*"), ("g", "a.STAR"), ("g", "a_*"), ("g_", "_a.*"), ("g", "a.>")]
    assert len({consumer_name(group, pattern) for group, pattern in pairs}) == len(pairs)
    assert consumer_name("g", "a.*") == consumer_name("g", "a.*")


def test_a_new_publication_of_a_task_gets_a_new_message_id() -> None:
    task = Task(new_id(1e9), "orders.close", run_at=1e9)
    assert message_id(task) == message_id(task.replace())
    assert message_id(task) != message_id(task.replace(attempt=1))
    assert message_id(task) != message_id(task.replace(run_at=1e9 + 0.001))


@pytest.mark.parametrize(("storage", "durable"), [("file", True), ("memory", False)])
def test_capabilities_are_declared_honestly(storage: str, durable: bool) -> None:
    config = parse_url(f"nats://h?storage={storage}&ack_wait=40s", SETTINGS)
    caps = NatsTransport(config, ManualClock()).capabilities
    assert (caps.durable, caps.lease, caps.shared) == (durable, 40, True)
    assert (caps.delay, caps.deduplication, caps.lease_extension, caps.lease_recovery) == (
        True,
        True,
        True,
        True,
    )
    assert not caps.dead_letters


WITHOUT_NATS = """
import sys
sys.modules["nats"] = None  # as if nats-py were not installed
from atp.core.clock import SystemClock
from atp.core.errors import ConfigError
from atp.core.plugins import make_plugin_manager
from atp.core.settings import Settings
manager = make_plugin_manager()
assert "nats" in manager.schemes("transport")
manager.make_transport("memory://", Settings(), SystemClock())
try:
    manager.make_transport("nats://127.0.0.1:4222", Settings(), SystemClock())
except ConfigError as exc:
    print(exc)
"""


def test_atp_runs_without_the_nats_extra_and_says_what_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_NATS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'atp[nats]'" in done.stdout
