"""The long-running processes: ``atp dev``, ``atp worker``, ``atp scheduler``."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from atp.adapters._auth.config import ServerSettings
from atp.adapters.cli._apps import DEMO_APP, load_app
from atp.adapters.cli._banner import banner
from atp.adapters.cli._context import Options, opened, pass_options
from atp.adapters.cli._serve import Runnable, exit_past_stuck_threads, serve
from atp.adapters.cli._server import bind, serve_api
from atp.adapters.cli._supervisor import (
    PROCESSES,
    Orphaned,
    RestartPolicy,
    Supervisor,
    child_specs,
    command_line,
    supervision_options,
)
from atp.core.cron.service import ScheduleService
from atp.core.errors import AtpError, ConfigError
from atp.core.ids import process_name
from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.settings import Settings
from atp.core.worker.runtime import Worker
from atp.core.workflows.engine import WorkflowEngine
from atp.sdk.app import App

__all__ = ["dev", "scheduler", "worker"]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("atp.dev")
_HUSH = "--no-console hides this"

APP_HELP = "MODULE:APP to run (or $ATP_APP)."
SUBJECT_HELP = "Subject pattern to consume; repeatable. Default: the app's patterns."
PROCESSES_HELP = (
    "Worker processes to run under a supervisor: N, or 'auto' (one per CPU). Default 1."
)
NAME_HELP = "Worker name, the lease owner of its tasks. Default host:pid:random; NAME-1.. with N."


def _worker_options(fn: F) -> F:
    fn = click.option("--concurrency", type=int, help="Handler calls at once.")(fn)
    fn = click.option("--subject", "subjects", multiple=True, help=SUBJECT_HELP)(fn)
    return click.option("--app", "app_option", metavar="MODULE:APP", help=APP_HELP)(fn)


@click.command(short_help="Run a worker and the scheduler in one process, no server needed.")
@click.argument("app_ref", metavar="[MODULE:APP]", required=False)
@_worker_options
@click.option(
    "--api",
    is_flag=True,
    help="Also serve REST and gRPC: with the [atp.server] tokens if any, else without "
    "authentication and only on a loopback host.",
)
@click.option(
    "--no-console",
    is_flag=True,
    help="Do not serve the web console (by default on http://127.0.0.1:8080/console/).",
)
@pass_options
def dev(
    options: Options,
    app_ref: str | None,
    app_option: str | None,
    concurrency: int | None,
    subjects: tuple[str, ...],
    api: bool,
    no_console: bool,
) -> None:
    """Run a worker and the scheduler in one process, no server needed.

    The embedded default: a SQLite store ('atp.db'), the in-process transport and a local
    coordinator. Tasks survive a restart. Without MODULE:APP it runs the demo,
    'examples.demo:app', from the repository root. Ctrl-C or SIGTERM drains running
    tasks and stops; a second one stops at once. It serves the web console on
    [atp.server] host and port (http://127.0.0.1:8080/console/) unless --no-console,
    with the configured tokens, else open on a loopback host; where it cannot (the port
    taken, atp[http] missing, another host) it warns and runs on without it. --api serves
    the REST and gRPC APIs too: authenticated when tokens are configured, else open,
    which it refuses on a host other than loopback (exit 5).
    """
    settings = options.settings(concurrency=concurrency, subjects=subjects or None)
    config = _dev_server(settings, console=False if no_console else None) if api else None
    if config is None and not no_console:
        config = _dev_console(settings)
    app = load_app(app_ref or app_option or settings.app or DEMO_APP)

    async def run() -> None:
        platform = await _declared(await opened(Platform.build(settings, local=True)), app)
        worker = Worker(platform, app.registry)
        banner("dev", app, settings, worker.patterns)
        runnables: list[Runnable] = [worker, Scheduler(platform)]
        if config is not None:
            await serve_api(platform, config, runnables, api=api)
        else:
            await serve(platform, runnables)

    _run(run)


@click.command("worker")
@click.argument("app_ref", metavar="MODULE:APP", required=False)
@_worker_options
@click.option("--processes", type=PROCESSES, default="1", help=PROCESSES_HELP)
@click.option("--name", help=NAME_HELP)
@supervision_options
@pass_options
def worker(
    options: Options,
    app_ref: str | None,
    app_option: str | None,
    concurrency: int | None,
    subjects: tuple[str, ...],
    processes: int,
    name: str | None,
    supervisor_pid: int | None,
    restart_delay: float,
    max_deaths: int,
) -> None:
    """Run the handlers of MODULE:APP, fed by a shared transport.

    Needs a transport other processes reach (redis://, nats://); 'memory://' is
    refused at start-up (exit 5): use 'atp dev' for that. --processes N runs N such
    workers as child processes, restarts one that dies, and drains them all on SIGTERM.
    """
    settings = options.settings(concurrency=concurrency, subjects=subjects or None)
    reference = _required_app(app_ref or app_option or settings.app)
    if processes > 1:
        policy = RestartPolicy(first_delay=restart_delay, max_deaths=max_deaths)
        _supervise(settings, processes, name or process_name(), policy)
        return
    app = load_app(reference)

    async def run() -> None:
        platform = await _checked(Platform.build(settings), lambda p: p.check_worker(app.registry))
        await opened(platform)
        await _declared(platform, app)
        runner = Worker(platform, app.registry, name=name)
        banner("worker", app, settings, runner.patterns)
        watch = [Orphaned(supervisor_pid)] if supervisor_pid else []
        await serve(platform, [runner, *watch])

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
        platform = await opened(await _checked(Platform.build(settings), Platform.check_scheduler))
        banner("scheduler", None, settings, [])
        await serve(platform, [Scheduler(platform)])

    _run(run)


def _dev_console(settings: Settings) -> ServerSettings | None:
    """The settings of ``atp dev``'s console, or None (with a warning) where it cannot be
    served: not installed (``atp[http]``), its port taken, open on a host that is not
    loopback. The console is a convenience: ``atp dev`` runs on without it."""
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import python_multipart  # noqa: F401
    except ImportError as exc:
        log.warning("the console needs atp[http] (%s): pip install 'atp[http]'; %s", exc, _HUSH)
        return None
    try:
        config = _dev_server(settings)
        if config.console:
            bind(config.host, config.port).close()
    except ConfigError as exc:
        log.warning("running without the console: %s; %s", exc, _HUSH)
        return None
    return config if config.console else None


def _dev_server(settings: Settings, *, console: bool | None = None) -> ServerSettings:
    """The API settings of ``atp dev``: authenticated with the configured tokens; without
    tokens, open, on a loopback host only (ConfigError otherwise)."""
    config = ServerSettings.load(settings, console=console)
    if config.auth and len(config.token_book()):
        return config
    if not _loopback(config.host):
        raise ConfigError(
            f"atp dev would serve without authentication on {config.host!r}, which "
            'is not a loopback address: set [atp.server] host = "127.0.0.1", or configure '
            "tokens ([atp.server] tokens_file, see `atp token create`)"
        )
    return dataclasses.replace(config, auth=False)


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _supervise(settings: Settings, processes: int, name: str, policy: RestartPolicy) -> None:
    """Run ``processes`` copies of this very command as children, and exit as they did."""
    ctx = click.get_current_context()
    specs = child_specs(command_line(ctx), processes, name, settings)
    banner(f"worker --processes {processes}", None, settings, [])
    code = asyncio.run(Supervisor(specs, policy, settings.drain_timeout).run())
    ctx.exit(code)


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


async def _declared(platform: Platform, app: App) -> Platform:
    """Store the app's cron schedules (created, or updated where changed) and register its
    workflows before running."""
    if app.schedules or app.workflows:
        try:
            if app.schedules:
                await ScheduleService(platform).declare(list(app.schedules.values()))
            if app.workflows:
                await WorkflowEngine(platform).register(list(app.workflows.values()))
        except AtpError:
            await platform.close()
            raise
    return platform


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())
    exit_past_stuck_threads(0)
