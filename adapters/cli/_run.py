"""The long-running processes: ``atp dev``, ``atp worker``, ``atp scheduler``; ``atp server``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from atp.adapters.cli._apps import DEMO_APP, load_app
from atp.adapters.cli._banner import banner
from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._errors import EXIT_FAILURE, report
from atp.adapters.cli._serve import exit_past_stuck_threads, serve
from atp.core.errors import ConfigError
from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.worker.runtime import Worker

__all__ = ["dev", "scheduler", "server", "worker"]

F = TypeVar("F", bound=Callable[..., Any])

APP_HELP = "MODULE:APP to run (or $ATP_APP)."
SUBJECT_HELP = "Subject pattern to consume; repeatable. Default: the app's patterns."


def _worker_options(fn: F) -> F:
    fn = click.option("--concurrency", type=int, help="Handler calls at once.")(fn)
    fn = click.option("--subject", "subjects", multiple=True, help=SUBJECT_HELP)(fn)
    return click.option("--app", "app_option", metavar="MODULE:APP", help=APP_HELP)(fn)


@click.command(short_help="Run a worker and the scheduler in one process, no server needed.")
@click.argument("app_ref", metavar="[MODULE:APP]", required=False)
@_worker_options
@pass_options
def dev(
    options: Options,
    app_ref: str | None,
    app_option: str | None,
    concurrency: int | None,
    subjects: tuple[str, ...],
) -> None:
    """Run a worker and the scheduler in one process, no server needed.

    The embedded default: a SQLite store ('atp.db'), the in-process transport and a local
    coordinator. Tasks survive a restart. Without MODULE:APP it runs the demo,
    'examples.demo:app', from the repository root. Ctrl-C or SIGTERM drains running
    tasks and stops; a second one stops at once.
    """
    settings = options.settings(concurrency=concurrency, subjects=subjects or None)
    app = load_app(app_ref or app_option or settings.app or DEMO_APP)

    async def run() -> None:
        platform = Platform.build(settings, local=True)
        worker = Worker(platform, app.registry)
        banner("dev", app, settings, worker.patterns)
        await serve(platform, [worker, Scheduler(platform)])

    _run(run)


@click.command("worker")
@click.argument("app_ref", metavar="MODULE:APP", required=False)
@_worker_options
@pass_options
def worker(
    options: Options,
    app_ref: str | None,
    app_option: str | None,
    concurrency: int | None,
    subjects: tuple[str, ...],
) -> None:
    """Run the handlers of MODULE:APP, fed by a shared transport.

    Needs a transport other processes reach (redis://, nats://); 'memory://' is
    refused at start-up (exit 5): use 'atp dev' for that.
    """
    settings = options.settings(concurrency=concurrency, subjects=subjects or None)
    app = load_app(_required_app(app_ref or app_option or settings.app))

    async def run() -> None:
        platform = await _checked(Platform.build(settings), lambda p: p.check_worker(app.registry))
        runner = Worker(platform, app.registry)
        banner("worker", app, settings, runner.patterns)
        await serve(platform, [runner])

    _run(run)


@click.command("scheduler")
@pass_options
def scheduler(options: Options) -> None:
    """Run a scheduler replica (one leader is elected).

    Run as many as you like; they elect one leader through the coordinator. Needs a
    shared transport, like 'atp worker'.
    """
    settings = options.settings()

    async def run() -> None:
        platform = await _checked(Platform.build(settings), Platform.check_scheduler)
        banner("scheduler", None, settings, [])
        await serve(platform, [Scheduler(platform)])

    _run(run)


@click.command("server")
def server() -> None:
    """Not built yet: REST, gRPC and the web console come later."""
    report(
        "atp server is not built yet: the REST and gRPC APIs and the web console come in a "
        "later release; use `atp dev`, `atp worker` and the atp.sdk Client meanwhile"
    )
    raise SystemExit(EXIT_FAILURE)


def _required_app(reference: str | None) -> str:
    if not reference:
        raise click.UsageError("name the app to run: atp worker MODULE:APP (or set ATP_APP)")
    return reference


async def _checked(platform: Platform, check: Callable[[Platform], None]) -> Platform:
    """Refuse before the banner what the runtime would refuse on start, closing cleanly."""
    try:
        check(platform)
    except ConfigError:
        await platform.close()
        raise
    return platform


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())
    exit_past_stuck_threads(0)
