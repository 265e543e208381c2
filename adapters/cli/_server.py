"""``atp server`` (the REST and gRPC APIs) and ``atp token create``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import click

from atp.adapters._auth.config import ServerSettings, read_tokens_file
from atp.adapters._auth.guard import Guard, build_guard
from atp.adapters._auth.tokens import new_token
from atp.adapters.cli._context import Options, opened, pass_options
from atp.adapters.cli._output import echo_json
from atp.adapters.cli._serve import Runnable, serve
from atp.core.errors import AlreadyExists, ConfigError, InvalidInput
from atp.core.platform import Platform
from atp.core.scheduler.runtime import Scheduler
from atp.core.urls import mask

__all__ = ["bind", "serve_api", "server", "token"]

log = logging.getLogger("atp.server")


@click.command("server")
@click.option("--host", help="Address to listen on. Default 127.0.0.1.")
@click.option("--port", type=int, help="REST port. Default 8080.")
@click.option("--grpc-port", type=int, help="gRPC port; 0: no gRPC. Default 50051.")
@click.option("--tokens-file", type=click.Path(dir_okay=False), help="TOML file of tokens.")
@click.option("--limiter", help="Rate limiter URL shared by every server, e.g. sqlite:///atp.db.")
@click.option("--no-auth", is_flag=True, help="Serve without authentication (development).")
@click.option("--no-console", is_flag=True, help="Do not serve the web console at /console/.")
@click.option(
    "--scheduler",
    "with_scheduler",
    is_flag=True,
    help="Also run a scheduler replica here (needed with a process-local transport).",
)
@pass_options
def server(
    options: Options,
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    tokens_file: str | None,
    limiter: str | None,
    no_auth: bool,
    no_console: bool,
    with_scheduler: bool,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json) and the gRPC API.

    Stateless: run as many as you like on the same backends. Every request needs a bearer
    token ([atp.server] tokens_file, made by 'atp token create') unless --no-auth.
    """
    settings = options.settings()
    config = ServerSettings.load(
        settings,
        host=host,
        port=port,
        grpc_port=grpc_port,
        tokens_file=tokens_file,
        limiter=limiter,
        auth=False if no_auth else None,
        console=False if no_console else None,
    )
    platform = Platform.build(settings, local=with_scheduler)
    others: list[Runnable] = [Scheduler(platform)] if with_scheduler else []
    if not (platform.direct_publish or with_scheduler):
        log.warning(
            "transport %r is process-local: published tasks wait in the store for a "
            "scheduler in this process (--scheduler)",
            mask(platform.settings.transport),
        )
    asyncio.run(serve_api(platform, config, others))


async def serve_api(
    platform: Platform, config: ServerSettings, others: list[Runnable], *, api: bool = True
) -> None:
    """Serve REST (and gRPC unless its port is 0) beside ``others`` until SIGINT/SIGTERM,
    then stop them all and close the platform; ConfigError (closing it) if one cannot
    start. ``api=False`` serves the console (and health) alone, no gRPC."""
    from atp.adapters.http import create_app

    await opened(platform)
    try:
        guard = build_guard(platform, config)
        http = HttpServer(create_app(platform, guard, config, api=api), config)
        runnables: list[Runnable] = [http, *others]
        if api and config.grpc_port:
            runnables.insert(1, _grpc(platform, guard, config))
    except BaseException:
        await platform.close()
        raise
    _announce(config, http.port, api)
    try:
        await serve(platform, runnables)
    finally:
        await guard.close()


def _announce(config: ServerSettings, port: int, api: bool) -> None:
    root = f"http://{config.host}:{port}"
    served = [f"REST on {root}"] if api else []
    if api and config.grpc_port:
        served.append(f"gRPC on {config.host}:{config.grpc_port}")
    if config.console:
        served.append(f"the console on {root}/console/")
    auth = "" if config.auth else " (authentication OFF)"
    log.info("atp %s: %s%s", "API" if api else "console", ", ".join(served), auth)


def _grpc(platform: Platform, guard: Guard, config: ServerSettings) -> Runnable:
    from atp.adapters._api.operations import Operations
    from atp.adapters.grpc import GrpcServer

    operations = Operations(platform, config)
    return GrpcServer(guard, operations, config.host, config.grpc_port, config.max_body)


class HttpServer:
    """uvicorn on a socket bound here (a taken port is a ConfigError), without its own
    signal handling: ``serve`` owns the signals and sets ``stop``."""

    def __init__(self, app: object, config: ServerSettings) -> None:
        self._socket = bind(config.host, config.port)
        self.port = int(self._socket.getsockname()[1])
        self._server = _uvicorn(app)

    async def run(self, stop: asyncio.Event) -> None:
        serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self._server.should_exit = True
        stopping.cancel()
        await serving


def _uvicorn(app: object) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")  # type: ignore[arg-type]
    return Server(config)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"REST cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


@click.group("token")
def token() -> None:
    """Make bearer tokens for atp server."""


@token.command("create")
@click.argument("token_id", metavar="ID")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="read, admin, publish:<pattern> or consume:<pattern>; repeatable.",
)
@click.option("--rate", type=float, help="Requests per second; default: the server's.")
@click.option("--burst", type=int, help="Requests at once; default: the server's.")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False),
    help="Tokens file to append the entry to (else it is printed on stderr).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the token and its entry as JSON.")
def create(
    token_id: str,
    scopes: tuple[str, ...],
    rate: float | None,
    burst: int | None,
    path: str | None,
    as_json: bool,
) -> None:
    """Make a token and print it ONCE on stdout; its [[tokens]] entry goes to --file.

    atp keeps only the secret's hash, so a lost token cannot be shown again: make a new
    one (and delete the old entry). An ID the --file holds already is refused (exit 4).
    '--json' prints {"id", "token", "entry"} on stdout, the entry holding the hash.
    """
    if (rate is not None and rate <= 0) or (burst is not None and burst < 1):
        raise InvalidInput("--rate must be > 0 and --burst >= 1")
    bearer, made = new_token(token_id, scopes, rate, burst)
    if path is not None and os.path.exists(path) and token_id in read_tokens_file(path):
        raise AlreadyExists(
            f"token id {token_id!r} is in {path!r} already (a server refuses a file with an "
            "id twice): choose another id, or delete that entry first"
        )
    entry = _toml_entry(made.to_mapping())
    if path is not None:
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"\n{entry}\n")
    if as_json:
        echo_json({"id": token_id, "token": bearer, "entry": made.to_mapping()})
        return
    if path is None:
        click.echo(f"# add to the server's tokens file:\n{entry}", err=True)
    click.echo(bearer)


def _toml_entry(entry: dict[str, object]) -> str:
    lines = ["[[tokens]]"]
    for key, value in entry.items():
        if isinstance(value, list):
            rendered = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        elif isinstance(value, str):
            rendered = f'"{value}"'
        else:
            rendered = str(value)
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines)
