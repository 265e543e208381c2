"""The few lines a long-running process prints on start: what runs, where, how to use it."""

from __future__ import annotations

import inspect
import os
import shlex
import typing
from collections.abc import Sequence
from typing import Any

import click

from atp.adapters.cli._output import json_text
from atp.core.handlers import Handler
from atp.core.settings import Settings
from atp.core.urls import mask
from atp.sdk.app import App

__all__ = ["banner", "example_payload"]

_SAMPLES: dict[Any, Any] = {int: 42, float: 1.5, str: "text", bool: True, list: [], dict: {}}


def banner(role: str, app: App | None, settings: Settings, patterns: Sequence[str]) -> None:
    """Print, on stderr, what this ``atp <role>`` process runs and how to send it work."""
    lines = [f"atp {role} (pid {os.getpid()})"]
    if app is not None:
        lines.append(f"  app          {app.name}: {', '.join(app.registry.patterns()) or '-'}")
        lines.append(f"  consumes     {', '.join(patterns)}")
    lines += [
        f"  store        {mask(settings.store)}",
        f"  transport    {mask(settings.transport)}",
        f"  coordinator  {mask(settings.coordinator_url)}",
    ]
    if app is not None and (example := _example(app)):
        lines += ["publish a task from another terminal:", f"  {example}"]
    lines.append("stop: Ctrl-C or SIGTERM drains running tasks; a second one stops at once")
    click.echo("\n".join(lines), err=True)


def _example(app: App) -> str | None:
    for handler in app.registry:
        if "*" not in handler.pattern and ">" not in handler.pattern:
            payload = json_text(example_payload(handler))
            return f"atp publish {handler.pattern} {shlex.quote(payload)}"
    return None


def example_payload(handler: Handler) -> dict[str, Any]:
    """Return a payload that fits ``handler``: a sample value for each required parameter."""
    try:
        hints = typing.get_type_hints(handler.fn)
    except Exception:  # annotations that do not resolve: samples are only a hint
        hints = {}
    return {
        name: _SAMPLES.get(hints.get(name), "value")
        for name, param in handler.signature.parameters.items()
        if param.default is inspect.Parameter.empty
        and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
    }
