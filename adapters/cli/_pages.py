"""What every listing of tasks shares (``atp task ls``, ``atp dlq ls``): its options and
how a page is printed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from atp.adapters.cli._output import echo_json, table
from atp.core import codec
from atp.core.ports import Page

__all__ = ["page_options", "show_page", "subject_option"]

F = TypeVar("F", bound=Callable[..., Any])

subject_option = click.option(
    "--subject", help="A subject pattern: orders.close, orders.*, orders.>."
)
"""``--subject``: only tasks whose subject matches this pattern."""


def page_options(fn: F) -> F:
    """``--limit``, ``--cursor``, ``--ids`` and ``--json``, in that order of the help."""
    options = [
        click.option("--limit", type=int, default=50, show_default=True, help="Tasks per page."),
        click.option("--cursor", help="The cursor printed under the previous page."),
        click.option("--ids", "ids_only", is_flag=True, help="Print only the ids, one a line."),
        click.option("--json", "as_json", is_flag=True, help="Print the page as JSON."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def show_page(
    page: Page,
    headers: tuple[str, ...],
    rows: Sequence[Sequence[str]],
    *,
    ids_only: bool,
    as_json: bool,
) -> None:
    """Print a page as JSON, as bare ids, or as a table with the next cursor on stderr."""
    if as_json:
        echo_json(
            {
                "items": [codec.record_to_dict(r) for r in page.items],
                "next_cursor": page.next_cursor,
            }
        )
        return
    if ids_only:
        for record in page.items:
            click.echo(record.id)
    elif page.items:
        table(headers, rows)
    else:
        click.echo("no tasks", err=True)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)
