"""The options every listing of tasks shares: ``atp task ls`` and ``atp dlq ls``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["page_options", "subject_option"]

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
