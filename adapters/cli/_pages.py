"""What every listing shares (``atp task ls``, ``atp dlq ls``, ``atp workflow runs``): its
options, how pages are walked and how they are printed.

The rule: a table is for people and shows one page (``--limit``, 50 by default) with the
next cursor on stderr. ``--ids`` and ``--json`` are for scripts and print every item the
filter matches, walking all pages, unless ``--limit`` or ``--cursor`` asks for one page.
``--all`` walks every page in any form. What is printed never depends on whether stdout
is a terminal, so a command tried by hand does the same in a script.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import click

from atp.adapters.cli._context import Options
from atp.adapters.cli._output import json_text, table
from atp.core import codec
from atp.core.model import TaskRecord
from atp.core.platform import Platform
from atp.core.service import TaskService

__all__ = [
    "PAGE_SIZE",
    "Fetch",
    "Listing",
    "Paging",
    "page_options",
    "show",
    "show_tasks",
    "subject_option",
    "walk",
]

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
S = TypeVar("S")

PAGE_SIZE = 50
"""Items per page, and per round trip when pages are walked, unless ``--limit`` says."""


class AnyPage(Protocol[R]):
    """A page of a listing: ``Page`` of tasks, ``RunPage`` of workflow runs."""

    @property
    def items(self) -> list[R]: ...

    @property
    def next_cursor(self) -> str | None: ...


Fetch = Callable[[S, str | None, int], Awaitable[AnyPage[R]]]
"""Read one page of a listing: ``fetch(service, cursor, limit)``."""


@dataclass(frozen=True, slots=True)
class Listing(Generic[S, R]):
    """How to read a listing's pages and print its items."""

    service: Callable[[Platform], S]
    fetch: Fetch[S, R]
    headers: Sequence[str]
    row: Callable[[R], Sequence[str]]
    """The cells of an item's table row."""
    to_dict: Callable[[R], Any]
    """An item's JSON object."""
    id_of: Callable[[R], str]
    noun: str = "tasks"
    """What the items are, for the note an empty listing prints."""


subject_option = click.option(
    "--subject", help="A subject pattern: orders.close, orders.*, orders.>."
)
"""``--subject``: only tasks whose subject matches this pattern."""

ALL_HELP = "Walk every page; --ids and --json do unless --limit or --cursor is given."


@dataclass(frozen=True, slots=True)
class Paging:
    """The paging options of a listing, as given."""

    limit: int | None
    cursor: str | None
    all_pages: bool
    ids_only: bool
    as_json: bool

    @property
    def walks(self) -> bool:
        """Whether every page is printed, not only the first one."""
        one_page_asked = self.limit is not None or self.cursor is not None
        return self.all_pages or ((self.ids_only or self.as_json) and not one_page_asked)

    @property
    def size(self) -> int:
        """Items per round trip."""
        return PAGE_SIZE if self.limit is None else self.limit


def page_options(fn: F) -> F:
    """``--limit``, ``--cursor``, ``--all``, ``--ids`` and ``--json``, passed on to ``fn``
    as one ``paging: Paging`` argument."""
    options = [
        click.option("--limit", type=int, help=f"Items per page; default {PAGE_SIZE}."),
        click.option("--cursor", help="Start after this cursor (printed under a page)."),
        click.option("--all", "all_pages", is_flag=True, help=ALL_HELP),
        click.option("--ids", "ids_only", is_flag=True, help="Print only the ids, one a line."),
        click.option("--json", "as_json", is_flag=True, help="Print the listing as JSON."),
    ]

    @functools.wraps(fn)
    def with_paging(
        *args: Any,
        limit: int | None,
        cursor: str | None,
        all_pages: bool,
        ids_only: bool,
        as_json: bool,
        **kwargs: Any,
    ) -> Any:
        paging = Paging(limit, cursor, all_pages, ids_only, as_json)
        return fn(*args, paging=paging, **kwargs)

    command: Any = with_paging
    for option in reversed(options):
        command = option(command)
    return command  # type: ignore[no-any-return]


async def walk(
    service: S, fetch: Fetch[S, R], *, cursor: str | None = None, limit: int = PAGE_SIZE
) -> AsyncIterator[AnyPage[R]]:
    """Yield every page of a listing from ``cursor`` on, ``limit`` items a round trip."""
    while True:
        page = await fetch(service, cursor, limit)
        yield page
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def show_tasks(
    options: Options,
    fetch: Fetch[TaskService, TaskRecord],
    headers: Sequence[str],
    row: Callable[[TaskRecord], Sequence[str]],
    paging: Paging,
) -> None:
    """Print a listing of tasks, following ``paging``."""
    listing = Listing(TaskService, fetch, headers, row, codec.record_to_dict, _task_id)
    show(options, listing, paging)


def _task_id(record: TaskRecord) -> str:
    return record.id


def show(options: Options, listing: Listing[S, R], paging: Paging) -> None:
    """Print a listing as JSON, as bare ids, or as a table, following ``paging``; under
    the one page printed, the cursor of the next on stderr (JSON carries it inside)."""

    async def run(service: S) -> str | None:
        pages = _pages(service, listing.fetch, paging)
        if paging.as_json:
            return await _json(pages, listing)
        if paging.ids_only:
            return await _ids(pages, listing)
        return await _table(pages, listing)

    next_cursor = options.using(listing.service, run)
    if next_cursor and not paging.as_json:
        click.echo(f"more: --cursor {next_cursor}", err=True)


async def _pages(service: S, fetch: Fetch[S, R], paging: Paging) -> AsyncIterator[AnyPage[R]]:
    if paging.walks:
        async for page in walk(service, fetch, cursor=paging.cursor, limit=paging.size):
            yield page
    else:
        yield await fetch(service, paging.cursor, paging.size)


async def _json(pages: AsyncIterator[AnyPage[R]], listing: Listing[S, R]) -> str | None:
    """One JSON object, ``{"items": [...], "next_cursor": ...}``, written as the pages
    come so that a long walk holds one page in memory; a walk ends on a null cursor."""
    click.echo('{"items":[', nl=False)
    first, next_cursor = True, None
    async for page in pages:
        for item in page.items:
            click.echo(("" if first else ",") + json_text(listing.to_dict(item)), nl=False)
            first = False
        next_cursor = page.next_cursor
    click.echo(f'],"next_cursor":{json_text(next_cursor)}}}')
    return next_cursor


async def _ids(pages: AsyncIterator[AnyPage[R]], listing: Listing[S, R]) -> str | None:
    next_cursor = None
    async for page in pages:
        for item in page.items:
            click.echo(listing.id_of(item))
        next_cursor = page.next_cursor
    return next_cursor


async def _table(pages: AsyncIterator[AnyPage[R]], listing: Listing[S, R]) -> str | None:
    rows: list[Sequence[str]] = []
    next_cursor = None
    async for page in pages:
        rows += [listing.row(item) for item in page.items]
        next_cursor = page.next_cursor
    if rows:
        table(listing.headers, rows)
    else:
        click.echo(f"no {listing.noun}", err=True)
    return next_cursor
