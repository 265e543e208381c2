"""Cron expressions in time zones: a year of ticks against croniter's own sequence, DST rules."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from atp.core.cron.expression import CronExpression
from atp.core.errors import InvalidInput

YEAR_START = datetime(2026, 1, 1)
EXPRESSIONS = [
    "30 2 * * *",
    "0 * * * *",
    "*/30 0-4 * * *",
    "0 2 * * 0",
    "15 1,2,3 * * *",
    "0 0 1 * *",
    "@daily",
    "0 30 1 * * *",
]
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Shanghai",
    "Australia/Lord_Howe",
]


def croniter_year(expr: str, tz: str) -> list[float]:
    """croniter's own sequence over 2026 (seconds first for six fields, as atp reads them)."""
    zone = ZoneInfo(tz)
    text = {"@daily": "0 0 * * *"}.get(expr, expr)
    start = YEAR_START.replace(tzinfo=zone) - timedelta(seconds=1)
    end = (YEAR_START + timedelta(days=365)).replace(tzinfo=zone).timestamp()
    matches = croniter(text, start, second_at_beginning=True)
    ticks = []
    while (tick := float(matches.get_next(float))) < end:
        ticks.append(tick)
    return ticks


def atp_year(expression: CronExpression) -> list[float]:
    start = YEAR_START.replace(tzinfo=expression.zone).timestamp()
    end = (YEAR_START + timedelta(days=365)).replace(tzinfo=expression.zone).timestamp()
    ticks = []
    for tick in expression.ticks(start - 1):
        if tick >= end:
            return ticks
        ticks.append(tick)
    raise AssertionError("unreachable")


def second_pass(tick: float, zone: ZoneInfo) -> bool:
    wall = datetime.fromtimestamp(tick, zone).replace(tzinfo=None)
    return wall.replace(tzinfo=zone, fold=0).timestamp() < tick


def hour_field(expr: str) -> str:
    fields = {"@daily": "0 0 * * *"}.get(expr, expr).split()
    return fields[-4]


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_a_year_of_ticks_is_croniters_sequence_with_repeated_wall_times_fired_once(expr, tz):
    expression = CronExpression(expr, tz)
    theirs = croniter_year(expr, tz)
    ours = atp_year(expression)
    zone = ZoneInfo(tz)
    dropped = [] if hour_field(expr) == "*" else [t for t in theirs if second_pass(t, zone)]
    expected = sorted(set(theirs) - set(dropped))
    assert ours == expected
    assert all(a < b for a, b in itertools.pairwise(ours))  # never twice
    walls = [datetime.fromtimestamp(t, zone).replace(tzinfo=None) for t in ours]
    if hour_field(expr) != "*":  # a fixed wall time fires once, even when it happens twice
        assert len(set(walls)) == len(walls)


def near_offset_change(tick: float, zone: ZoneInfo) -> bool:
    before = datetime.fromtimestamp(tick - 86400, zone).utcoffset()
    return before != datetime.fromtimestamp(tick + 86400, zone).utcoffset()


@pytest.mark.parametrize("tz", ZONES)
def test_restarting_from_a_tick_continues_the_same_sequence(tz):
    """The leader computes each next tick from the last one stored: no drift, no gap.
    Checked at every tick within a day of each offset change, and at a sample of the rest."""
    for expr in ("0 * * * *", "30 2 * * *"):
        expression = CronExpression(expr, tz)
        year = atp_year(expression)
        for index, tick in enumerate(year[:-1]):
            if index % 50 == 0 or near_offset_change(tick, expression.zone):
                assert expression.next_after(tick) == year[index + 1]


def berlin(*args: int, fold: int = 0) -> float:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin"), fold=fold).timestamp()


def test_spring_forward_fires_a_skipped_wall_time_once_right_after_the_gap():
    daily = CronExpression("30 2 * * *", "Europe/Berlin")
    assert daily.upcoming(berlin(2026, 3, 28, 12, 0), 2) == [
        berlin(2026, 3, 29, 3, 0),  # 02:30 does not exist that night: 03:00 CEST
        berlin(2026, 3, 30, 2, 30),
    ]
    quarter = CronExpression("*/30 * * * *", "Europe/Berlin")
    assert quarter.upcoming(berlin(2026, 3, 29, 1, 15), 3) == [
        berlin(2026, 3, 29, 1, 30),
        berlin(2026, 3, 29, 3, 0),  # 02:00 and 02:30 fall on 03:00, fired once
        berlin(2026, 3, 29, 3, 30),
    ]


def test_fall_back_fires_a_fixed_time_once_and_an_every_hour_schedule_in_both_passes():
    daily = CronExpression("30 2 * * *", "Europe/Berlin")
    assert daily.upcoming(berlin(2026, 10, 24, 12, 0), 2) == [
        berlin(2026, 10, 25, 2, 30),  # the first 02:30 (CEST) only
        berlin(2026, 10, 26, 2, 30),
    ]
    hourly = CronExpression("0 * * * *", "Europe/Berlin")
    assert hourly.upcoming(berlin(2026, 10, 25, 1, 30), 3) == [
        berlin(2026, 10, 25, 2, 0),
        berlin(2026, 10, 25, 2, 0, fold=1),  # an hour of real time later
        berlin(2026, 10, 25, 3, 0),
    ]


def test_previous_before_mirrors_next_after():
    expression = CronExpression("30 2 * * *", "Europe/Berlin")
    assert expression.previous_before(berlin(2026, 10, 26, 0, 0)) == berlin(2026, 10, 25, 2, 30)
    assert expression.previous_before(berlin(2026, 3, 30, 0, 0)) == berlin(2026, 3, 29, 3, 0)


def test_six_fields_read_seconds_first_and_macros_expand():
    seconds = CronExpression("*/10 * * * * *")
    assert seconds.has_seconds
    assert seconds.upcoming(1_800_000_000.0, 3) == [
        1_800_000_010.0,
        1_800_000_020.0,
        1_800_000_030.0,
    ]
    assert CronExpression("@hourly").upcoming(1_800_000_000.0, 1) == [1_800_000_000.0 + 3600]
    assert CronExpression("@HOURLY").next_after(0) == 3600.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("61 * * * *", "bad cron expression"),
        ("* * *", "has 3 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("@fortnightly", "unknown cron macro"),
        ("", "non-empty"),
        ("0 0 30 2 *", "never fires"),
        ("a b c d e", "bad cron expression"),
    ],
)
def test_bad_expressions_are_invalid_input(text, message):
    with pytest.raises(InvalidInput, match=message):
        CronExpression(text)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "Europe/../etc/passwd", "UTC+3"])
def test_unknown_time_zones_are_invalid_input(tz):
    with pytest.raises(InvalidInput, match="time zone"):
        CronExpression("* * * * *", tz)
