"""Click parameter types for what atp reads from a command line: durations, times, headers,
rates."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TypeVar, cast

import click

from atp.core import codec
from atp.core.durations import parse_duration
from atp.core.errors import InvalidInput
from atp.core.flow.rules import Rate, parse_rate
from atp.core.model import JSON, State

__all__ = [
    "DURATION",
    "HEADER",
    "RATE",
    "STATE",
    "TIMESTAMP",
    "Parsed",
    "read_ids",
    "read_json",
]

T = TypeVar("T")


class Parsed(click.ParamType[T]):
    """A type ``parse`` reads from the command line's text. A value that already is a
    ``done`` (a default, say) passes through; an InvalidInput becomes click's usage error."""

    done: type

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> T:
        if isinstance(value, self.done):
            return cast(T, value)
        try:
            return self.parse(value)
        except InvalidInput as exc:
            # click names the option already: drop a leading "duration: " and the like
            self.fail(exc.message.removeprefix(f"{self.name}: "), param, ctx)

    def parse(self, value: object) -> T:
        """Return ``value`` read; raise InvalidInput saying what is wrong with it."""
        raise NotImplementedError


class Duration(Parsed[float]):
    """``90``, ``1.5``, ``250ms``, ``30s``, ``5m``, ``2h``, ``1d`` -> seconds."""

    name = "duration"
    done = float

    def parse(self, value: object) -> float:
        return parse_duration(value, "duration")


class Timestamp(Parsed[float]):
    """An ISO 8601 time (``2030-01-02T03:04:05Z``) -> seconds since the epoch; naive is UTC."""

    name = "iso8601"
    done = float

    def parse(self, value: object) -> float:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            example = "e.g. 2030-01-02T03:04:05Z"
            raise InvalidInput(f"{value!r} is not an ISO 8601 time ({example})") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


class Header(Parsed[tuple[str, str]]):
    """``name=value`` -> ``(name, value)``."""

    name = "name=value"
    done = tuple

    def parse(self, value: object) -> tuple[str, str]:
        name, sep, text = str(value).partition("=")
        if not sep or not name:
            raise InvalidInput(f"{value!r} is not a header: write name=value")
        return name, text


class RateType(Parsed[Rate]):
    """``10/s``, ``100/m``, ``5/30s`` -> a Rate."""

    name = "rate"
    done = Rate

    def parse(self, value: object) -> Rate:
        return parse_rate(value, "rate")


DURATION = Duration()
TIMESTAMP = Timestamp()
HEADER = Header()
RATE = RateType()
STATE = click.Choice([state.value for state in State], case_sensitive=False)


def read_json(text: str | None, what: str) -> JSON:
    """Return the JSON value in ``text`` (``-``: read stdin); None when ``text`` is None."""
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return codec.loads(text)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.message.removeprefix('malformed JSON: ')}"
        ) from exc


def read_ids(ids: tuple[str, ...]) -> list[str]:
    """Return the task ids given, where ``-`` stands for those read from stdin (one a line)."""
    found: list[str] = []
    for item in ids:
        if item == "-":
            found.extend(sys.stdin.read().split())
        else:
            found.append(item)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise InvalidInput("no task ids given" + (" on stdin" if "-" in ids else ""))
    return unique
