"""The few lines a long-running process prints on start: what runs, where, how to use it."""

from __future__ import annotations

import ast
import inspect
import os
import shlex
import textwrap
import typing
from collections.abc import Sequence
from typing import Any

import click

from atp.adapters.cli._output import json_text
from atp.core.handlers import Handler
from atp.core.settings import Settings
from atp.core.urls import mask
from atp.core.workflows.definition import TIMER_SUBJECT, Definition
from atp.sdk.app import App

__all__ = ["banner", "example_input", "example_payload"]

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
    if app is not None and (examples := _examples(app)):
        lines += ["send it work from another terminal:", *(f"  {line}" for line in examples)]
    lines.append("stop: Ctrl-C or SIGTERM drains running tasks; a second one stops at once")
    click.echo("\n".join(lines), err=True)


def _examples(app: App) -> list[str]:
    """A command that starts the app's first workflow, and one that publishes a task to
    its first handler of a concrete subject that is not a workflow step."""
    found = []
    if app.workflows:
        definition = next(iter(app.workflows.values()))
        body = shlex.quote(json_text(example_input(app, definition)))
        found.append(f"atp workflow start {definition.name} --input {body}")
    steps = _step_subjects(app)
    concrete = (h for h in app.registry if "*" not in h.pattern and ">" not in h.pattern)
    if handler := next((h for h in concrete if h.pattern not in steps), None):
        payload = shlex.quote(json_text(example_payload(handler)))
        found.append(f"atp publish {handler.pattern} {payload}")
    return found


def _step_subjects(app: App) -> set[str]:
    """The subjects the app's workflows run as steps (and the timer's): a task published
    to one by hand has no run to report to."""
    subjects = {TIMER_SUBJECT}
    for definition in app.workflows.values():
        for step in definition.steps:
            subjects.update(s for s in (step.subject, step.compensate) if s)
    return subjects


def example_input(app: App, definition: Definition) -> dict[str, Any]:
    """Return a run input that fits ``definition``: each key its steps' handlers read
    from ``input`` (``input["day"]``, ``input.get("day")``), with a sample value."""
    sample: dict[str, Any] = {}
    for step in definition.steps:
        handler = app.registry.resolve(step.subject) if step.subject else None
        if handler is not None:
            sample.update((k, v) for k, v in _input_keys(handler).items() if k not in sample)
    return sample


def _input_keys(handler: Handler) -> dict[str, Any]:
    """The keys ``handler`` reads from its ``input`` parameter, by reading its source:
    a number where the key is compared with or added to a number, else text."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(handler.fn)))
    except (OSError, TypeError, SyntaxError):  # no source to read: the sample is only a hint
        return {}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    keys: dict[str, Any] = {}
    for node in ast.walk(tree):
        key = _read_key(node)
        if key is not None and key not in keys:
            keys[key] = 42 if _numeric(parents.get(node)) else "text"
    return keys


def _read_key(node: ast.AST) -> str | None:
    """``"day"`` for ``input["day"]`` and ``input.get("day", ...)``; None otherwise."""
    if isinstance(node, ast.Subscript) and _is_input(node.value):
        index = node.slice
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and _is_input(node.func.value)
        and node.args
    ):
        index = node.args[0]
    else:
        return None
    return index.value if isinstance(index, ast.Constant) and isinstance(index.value, str) else None


def _is_input(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "input"


def _numeric(parent: ast.AST | None) -> bool:
    if isinstance(parent, ast.Compare):
        operands = [parent.left, *parent.comparators]
    elif isinstance(parent, ast.BinOp):
        operands = [parent.left, parent.right]
    else:
        return False
    return any(isinstance(o, ast.Constant) and type(o.value) in (int, float) for o in operands)


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
