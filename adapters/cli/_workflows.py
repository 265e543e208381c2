"""``atp workflow register|ls|start|runs|get|signal|cancel``: durable workflow runs."""

from __future__ import annotations

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import echo_json, iso, table
from atp.adapters.cli._pages import Listing, Paging, page_options, show
from atp.adapters.cli._params import read_json
from atp.core.workflows.definition import definition_from_dict, definition_to_dict
from atp.core.workflows.engine import WorkflowEngine
from atp.core.workflows.runs import Run, RunPage, RunState, StepRun, run_to_dict

__all__ = ["workflow"]

RUN_STATES = click.Choice([state.value for state in RunState], case_sensitive=False)

json_option = click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")


@click.group()
def workflow() -> None:
    """Register workflows; start, inspect, signal and cancel their runs.

    Steps are ordinary tasks: a worker running the steps' handlers moves a run on, and
    the scheduler fires signal timeouts and picks up runs a dead worker left.
    """


@workflow.command("register")
@click.argument("definition", metavar="JSON")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@pass_options
def register(options: Options, definition: str, as_json: bool) -> None:
    """Register the workflow definition JSON ('-' reads stdin).

    A version is immutable: registering it again with other steps is refused (exit 4).
    """
    parsed = definition_from_dict(read_json(definition, "the definition"))
    (created,) = options.using(WorkflowEngine, lambda engine: engine.register([parsed]))
    if as_json:
        echo_json({"name": parsed.name, "version": parsed.version, "created": created})
        return
    state = "registered" if created else "unchanged"
    click.echo(f"{state} {parsed.name} v{parsed.version}")


@workflow.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print each definition as JSON.")
@pass_options
def ls(options: Options, as_json: bool) -> None:
    """List registered workflow definitions, every version."""
    definitions = options.using(WorkflowEngine, lambda engine: engine.definitions())
    if as_json:
        for definition in definitions:
            echo_json(definition_to_dict(definition))
        return
    rows = [
        (d.name, str(d.version), str(len(d.steps)), ", ".join(s.name for s in d.steps))
        for d in definitions
    ]
    table(("NAME", "VERSION", "STEPS", "STEP NAMES"), rows)


@workflow.command("start")
@click.argument("name")
@click.option("--input", "input_text", metavar="JSON", help="The run's input, as JSON.")
@click.option("--version", type=int, help="Definition version; default the latest.")
@json_option
@pass_options
def start(
    options: Options, name: str, input_text: str | None, version: int | None, as_json: bool
) -> None:
    """Start a run of workflow NAME; print its id."""
    body = read_json(input_text, "--input")
    run = options.using(WorkflowEngine, lambda engine: engine.start(name, body, version=version))
    _show(run, run.id, as_json)


def _show(run: Run, text: str, as_json: bool) -> None:
    """Print ``text`` for people, or the whole run as JSON for scripts."""
    if as_json:
        echo_json(run_to_dict(run))
    else:
        click.echo(text)


@workflow.command("runs")
@click.option("--workflow", "name", help="Only runs of this workflow.")
@click.option("--state", "states", type=RUN_STATES, multiple=True, help="Repeatable.")
@page_options
@pass_options
def runs(options: Options, name: str | None, states: tuple[str, ...], paging: Paging) -> None:
    """List runs, newest first (by run id, which sorts by start time).

    A table shows one page and the next cursor on stderr. --ids and --json print
    every match, walking all pages, unless --limit or --cursor asks for one page;
    --all walks all pages for the table too.
    """

    async def fetch(engine: WorkflowEngine, cursor: str | None, limit: int) -> RunPage:
        return await engine.list(workflow=name, states=states, cursor=cursor, limit=limit)

    headers = ("RUN", "WORKFLOW", "STATE", "STEPS DONE", "STARTED")
    listing = Listing(WorkflowEngine, fetch, headers, _run_row, run_to_dict, _run_id, "runs")
    show(options, listing, paging)


def _run_row(r: Run) -> tuple[str, ...]:
    return (r.id, f"{r.workflow} v{r.version}", r.state.value, _progress(r), iso(r.created_at))


def _run_id(run: Run) -> str:
    return run.id


@workflow.command("get")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole run as JSON.")
@pass_options
def get(options: Options, run_id: str, as_json: bool) -> None:
    """Show run RUN_ID: each step's state, attempts, timings, task and error."""
    run = options.using(WorkflowEngine, lambda engine: engine.get(run_id))
    if as_json:
        echo_json(run_to_dict(run))
        return
    click.echo(f"run {run.id}: {run.workflow} v{run.version} {run.state}")
    if run.error:
        click.echo(f"error: {run.error}")
    rows = [_step_row(name, step) for name, step in run.steps.items()]
    table(("STEP", "STATE", "ATTEMPTS", "STARTED", "FINISHED", "TASK", "UNDO", "ERROR"), rows)


@workflow.command("signal")
@click.argument("run_id")
@click.argument("name")
@click.option("--payload", metavar="JSON", help="The signal's payload, as JSON.")
@json_option
@pass_options
def signal(options: Options, run_id: str, name: str, payload: str | None, as_json: bool) -> None:
    """Send signal NAME to run RUN_ID."""
    body = read_json(payload, "--payload")
    run = options.using(WorkflowEngine, lambda engine: engine.signal(run_id, name, body))
    _show(run, f"signalled {run.id}: {run.state}", as_json)


@workflow.command("cancel")
@click.argument("run_id")
@json_option
@pass_options
def cancel(options: Options, run_id: str, as_json: bool) -> None:
    """Cancel run RUN_ID: pending steps are cancelled, running step tasks asked to stop."""
    run = options.using(WorkflowEngine, lambda engine: engine.cancel(run_id))
    _show(run, f"cancelled {run.id}", as_json)


def _step_row(name: str, step: StepRun) -> tuple[str, ...]:
    times = (iso(step.started_at), iso(step.finished_at))
    undo = step.compensation.value if step.compensation else "-"
    tail = (step.task_id or "-", undo, step.error or "")
    return (name, step.state.value, str(step.attempts), *times, *tail)


def _progress(run: Run) -> str:
    done = sum(step.state.value in ("SUCCEEDED", "SKIPPED") for step in run.steps.values())
    return f"{done}/{len(run.steps)}"
