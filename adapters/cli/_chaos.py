"""``atp chaos``: the chaos suites of a checkout of atp (``chaos/``), run from the CLI."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import click

__all__ = ["chaos"]

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.command(context_settings=_PASS_THROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def chaos(args: tuple[str, ...]) -> None:
    """Run the chaos suites: atp chaos ls | atp chaos run [SUITE...] [--quick] [--seed N] |
    atp chaos soak --minutes N [--stack S] [--seed N].

    The suites live in the chaos/ folder of a checkout of atp, beside an editable
    install (pip install -e .); `atp chaos --help` shows every option.
    """
    sys.exit(_entry()(list(args) or ["--help"]))


def _entry() -> Callable[[list[str]], int]:
    """Find ``chaos.__main__.main`` in the current folder or in atp's own checkout."""
    import atp.core

    for root in (Path.cwd(), Path(atp.core.__file__).resolve().parents[1]):
        if (root / "chaos" / "__main__.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            main: Callable[[list[str]], int] = importlib.import_module("chaos.__main__").main
            return main
    raise click.ClickException(
        "atp chaos runs the suites of a checkout of atp: run it from the checkout, or "
        "install atp from one with pip install -e ."
    )
