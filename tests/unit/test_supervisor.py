"""``atp worker --processes``, without processes: the restart and give-up policy, the
process count, and the command line each child is given."""

from __future__ import annotations

import os
import sys

import click
import pytest

from atp.adapters.cli import cli
from atp.adapters.cli._run import worker
from atp.adapters.cli._supervisor import (
    DEATH_WINDOW,
    MAX_DEATHS,
    PROCESSES,
    RESTART_DELAY,
    RESTART_DELAY_CAP,
    RestartPolicy,
    Restarts,
    child_specs,
    command_line,
)
from atp.core.settings import Settings

FAST_DEATH = 0.1
"""Seconds up before a death that counts as a crash at start."""


def deaths(
    restarts: Restarts, count: int, *, every: float, uptime: float = FAST_DEATH
) -> list[float | None]:
    """Let ``restarts`` see ``count`` deaths ``every`` seconds apart; return its answers."""
    return [restarts.after_death(uptime, n * every) for n in range(count)]


# -- the pause before a restart ------------------------------------------------------------


def test_the_pause_doubles_from_the_first_delay_up_to_the_cap() -> None:
    policy = RestartPolicy(max_deaths=100, window=1.0)
    delays = deaths(Restarts(policy), 9, every=60.0)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert (RESTART_DELAY, RESTART_DELAY_CAP) == (0.5, 30.0)


def test_a_child_that_stayed_up_restarts_after_the_first_delay_again() -> None:
    restarts = Restarts(RestartPolicy(stable_after=60.0))
    assert deaths(restarts, 3, every=1.0) == [0.5, 1.0, 2.0]
    assert restarts.after_death(uptime=60.0, now=100.0) == 0.5
    assert restarts.after_death(uptime=FAST_DEATH, now=101.0) == 1.0


# -- giving up -----------------------------------------------------------------------------


def test_one_death_more_than_max_deaths_within_the_window_gives_up() -> None:
    restarts = Restarts(RestartPolicy(max_deaths=3, window=60.0))
    answers = deaths(restarts, 4, every=1.0)
    assert None not in answers[:3]
    assert answers[3] is None


def test_deaths_older_than_the_window_are_forgotten() -> None:
    restarts = Restarts(RestartPolicy(max_deaths=2, window=10.0, max_delay=1.0))
    assert None not in deaths(restarts, 12, every=5.0)  # two at most within any 10 s
    assert len(restarts.deaths) == 2


def test_the_defaults_give_up_on_a_child_that_crashes_at_start_within_the_window() -> None:
    restarts, now = Restarts(RestartPolicy()), 0.0
    answer: float | None = 0.0
    for _ in range(MAX_DEATHS + 1):
        answer = restarts.after_death(uptime=2.0, now=now)
        now += 2.0 + (answer or 0.0)  # a start of 2 s, then the pause
    assert answer is None
    assert now < DEATH_WINDOW


def test_the_defaults_keep_restarting_a_child_that_dies_now_and_then() -> None:
    restarts = Restarts(RestartPolicy())
    assert None not in deaths(restarts, 50, every=600.0, uptime=600.0)


# -- --processes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("4", 4), (" 16 ", 16), (7, 7)])
def test_a_process_count_is_a_positive_integer(text: object, count: int) -> None:
    assert PROCESSES.convert(text, None, None) == count


def test_auto_is_one_process_per_usable_cpu() -> None:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert PROCESSES.convert("auto", None, None) == usable
    assert PROCESSES.convert("AUTO", None, None) == usable


@pytest.mark.parametrize("text", ["0", "-2", "x", "1.5", ""])
def test_a_bad_process_count_is_refused(text: str) -> None:
    with pytest.raises(click.BadParameter, match="not a number of processes"):
        PROCESSES.convert(text, None, None)


# -- what each child runs ------------------------------------------------------------------


def worker_context(*args: str) -> click.Context:
    """The parsed context of ``atp ARGS`` (a worker command line), not invoked."""
    split = args.index("worker")
    group = cli.make_context("atp", list(args[: split + 1]))
    return worker.make_context("worker", list(args[split + 1 :]), parent=group)


def test_a_child_gets_the_same_command_line_without_the_supervisors_options() -> None:
    ctx = worker_context(
        "--store",
        "redis://r",
        "--log-level",
        "debug",
        "worker",
        "app:x",
        "--subject",
        "a.*",
        "--subject",
        "b",
        "--concurrency",
        "4",
        "--processes",
        "3",
        "--name",
        "w",
        "--max-deaths",
        "9",
    )
    line = command_line(ctx)
    assert line == [
        "--store",
        "redis://r",
        "--log-level",
        "DEBUG",
        "worker",
        "--subject",
        "a.*",
        "--subject",
        "b",
        "--concurrency",
        "4",
        "app:x",
    ]
    again = worker_context(*line)
    kept = {k: v for k, v in ctx.params.items() if k in ("app_ref", "subjects", "concurrency")}
    assert {k: again.params[k] for k in kept} == kept
    assert again.parent is not None
    assert ctx.parent is not None
    assert again.parent.params == ctx.parent.params


def test_children_are_single_workers_named_after_the_supervisor() -> None:
    specs = child_specs(["worker", "app:x"], 3, "host:1:ab", Settings())
    assert [spec.name for spec in specs] == ["host:1:ab-1", "host:1:ab-2", "host:1:ab-3"]
    first = specs[0].argv
    assert first[:3] == [sys.executable, "-m", "atp.adapters.cli"]
    assert first[3:] == [
        "worker",
        "app:x",
        "--processes",
        "1",
        "--name",
        "host:1:ab-1",
        "--supervisor-pid",
        str(os.getpid()),
    ]
    assert "ATP_PROMETHEUS__PORT" not in specs[0].env


@pytest.mark.parametrize(
    ("table", "ports"),
    [
        ({}, ["9464", "9465"]),
        ({"port": 9500}, ["9500", "9501"]),
        ({"port": "9600"}, ["9600", "9601"]),
        ({"port": 0}, [None, None]),
    ],
)
def test_with_the_metrics_plugin_each_child_serves_a_port_of_its_own(
    table: dict[str, object], ports: list[str | None]
) -> None:
    settings = Settings(plugins=("atp.plugins.prometheus",), extra={"prometheus": table})
    specs = child_specs(["worker", "app:x"], 2, "w", settings)
    assert [spec.env.get("ATP_PROMETHEUS__PORT") for spec in specs] == ports
