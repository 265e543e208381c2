"""``atp plugins``: what is loaded, where it comes from, and what it serves."""

from __future__ import annotations

import dataclasses

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import echo_json
from atp.core.plugins import PluginInfo, make_plugin_manager

__all__ = ["plugins"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
@pass_options
def plugins(options: Options, as_json: bool) -> None:
    """List the plugins: distribution, URL schemes served, hooks."""
    infos = make_plugin_manager(options.settings(quiet=True)).info()
    if as_json:
        echo_json([dataclasses.asdict(info) for info in infos])
        return
    for index, info in enumerate(infos):
        if index:
            click.echo()
        _show(info)


def _show(info: PluginInfo) -> None:
    click.echo(f"{info.name}  ({info.distribution})")
    schemes = "; ".join(
        f"{kind}: {', '.join(s + '://' for s in found)}"
        for kind, found in sorted(info.schemes.items())
    )
    click.echo(f"  schemes  {schemes or '-'}")
    click.echo(f"  hooks    {', '.join(info.hooks) or '-'}")
