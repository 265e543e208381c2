"""``atp worker --processes N``: one supervisor process keeping N worker processes up.

Each child is an ordinary ``atp worker`` (``--processes 1``) in a process group of its own,
so a terminal's Ctrl-C reaches only the supervisor, which sends each child one SIGTERM: the
children drain as a single worker does. A child that dies is started again after a pause
that doubles from ``RESTART_DELAY`` to ``RESTART_DELAY_CAP``; one that keeps dying makes the
supervisor stop the others and give up. A child whose supervisor vanished drains and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from atp.adapters.cli._errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_USAGE
from atp.adapters.cli._params import Parsed
from atp.core.errors import AtpError, ConfigError, InvalidInput
from atp.core.settings import Settings

__all__ = [
    "PROCESSES",
    "ChildSpec",
    "Orphaned",
    "RestartPolicy",
    "Restarts",
    "Supervisor",
    "child_specs",
    "command_line",
    "supervision_options",
]

log = logging.getLogger("atp.supervisor")

F = TypeVar("F", bound=Callable[..., Any])

RESTART_DELAY = 0.5
"""Seconds before a dead worker process is started again, after its first death."""
RESTART_DELAY_CAP = 30.0
"""The longest pause before a restart; the pause doubles with each death up to this."""
STABLE_AFTER = 60.0
"""Seconds a worker process must have stayed up for its restart pause to start over."""
MAX_DEATHS = 5
"""Deaths of one worker process within ``DEATH_WINDOW`` that are tolerated; at the next
one the supervisor stops the others and exits 1."""
DEATH_WINDOW = 120.0
"""Seconds over which ``MAX_DEATHS`` is counted."""
KILL_GRACE = 10.0
"""Seconds past ``drain_timeout`` a stopping worker process gets before SIGKILL."""
PARENT_CHECK = 1.0
"""Seconds between a worker process's looks at whether its supervisor is still there."""
FATAL_EXITS = frozenset({EXIT_USAGE, EXIT_CONFIG})
"""Exit codes no restart can mend: bad usage or configuration, the same for every child."""
SUPERVISOR_PARAMS = frozenset(
    {"processes", "name", "supervisor_pid", "restart_delay", "max_deaths"}
)
"""Options of ``atp worker`` the supervisor consumes instead of passing them on."""
METRICS_PLUGIN = "atp.plugins.prometheus"
METRICS_PORT = 9464
"""The metrics plugin's default ``[atp.prometheus] port``; child k serves port + k - 1."""


# -- the command line ------------------------------------------------------------------


class ProcessCount(Parsed[int]):
    """A positive number of processes, or ``auto``: one per CPU this process may use."""

    name = "N|auto"
    done = int

    def parse(self, value: object) -> int:
        text = str(value).strip().lower()
        if text == "auto":
            return _cpus()
        hint = "is not a number of processes: write N >= 1 or 'auto'"
        try:
            count = int(text)
        except ValueError:
            raise InvalidInput(f"{value!r} {hint}") from None
        if count < 1:
            raise InvalidInput(f"{count} {hint}")
        return count


PROCESSES = ProcessCount()


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # the CPUs a container or taskset leaves us
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def supervision_options(fn: F) -> F:
    """The hidden options of ``atp worker`` that only the supervisor and its children use."""
    pid_help = "Set on a child: drain and exit once this parent is gone."
    delay_help = "Seconds before a first restart."
    deaths_help = "Deaths of one child tolerated in the window."
    seconds, count = click.FloatRange(min=0), click.IntRange(min=0)
    hide = functools.partial(click.option, hidden=True)
    hidden = [
        hide("--supervisor-pid", type=int, help=pid_help),
        hide("--restart-delay", type=seconds, default=RESTART_DELAY, help=delay_help),
        hide("--max-deaths", type=count, default=MAX_DEATHS, help=deaths_help),
    ]
    for option in hidden:
        fn = option(fn)
    return fn


def command_line(ctx: click.Context, skip: Container[str] = SUPERVISOR_PARAMS) -> list[str]:
    """The ``atp`` command line that ``ctx`` (a sub-command) was given, without ``skip``."""
    parent = ctx.parent
    head = _arguments(parent, skip) if parent is not None else []
    return [*head, ctx.info_name or "", *_arguments(ctx, skip)]


def _arguments(ctx: click.Context, skip: Container[str]) -> list[str]:
    options: list[str] = []
    positional: list[str] = []
    for param in ctx.command.params:
        if param.name is None or param.name in skip or param.name not in ctx.params:
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):
            positional += [] if value is None else [str(value)]
        elif isinstance(param, click.Option):
            options += _option(param, value)
    return options + positional


def _option(param: click.Option, value: Any) -> list[str]:
    if value is None or value == ():
        return []
    if param.is_flag:
        return [param.opts[0]] if value else list(param.secondary_opts[:1])
    values = value if param.multiple else (value,)
    return [part for item in values for part in (param.opts[0], str(item))]


# -- what each child runs ----------------------------------------------------------------


@dataclass(frozen=True)
class ChildSpec:
    """How to start worker process ``number``: its command line and its environment."""

    number: int
    name: str
    argv: list[str]
    env: dict[str, str]


def child_specs(args: Sequence[str], count: int, name: str, settings: Settings) -> list[ChildSpec]:
    """``count`` single workers running ``atp ARGS``, named ``NAME-1``..``NAME-count``."""
    parent = str(os.getpid())
    specs = []
    for number in range(1, count + 1):
        child = f"{name}-{number}"
        command = [sys.executable, "-m", "atp.adapters.cli", *args]
        argv = [*command, "--processes", "1", "--name", child, "--supervisor-pid", parent]
        env = {**os.environ, **_metrics_env(settings, number)}
        specs.append(ChildSpec(number, child, argv, env))
    return specs


def _metrics_env(settings: Settings, number: int) -> dict[str, str]:
    """A metrics port of its own for each child: N processes cannot share one."""
    if METRICS_PLUGIN not in settings.plugins:
        return {}
    try:
        port = int(settings.extra.get("prometheus", {}).get("port", METRICS_PORT))
    except (TypeError, ValueError):
        return {}  # the plugin refuses it in each child, naming the value
    return {"ATP_PROMETHEUS__PORT": str(port + number - 1)} if port else {}


# -- when to restart, when to give up -----------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """How dead worker processes are restarted, and when the supervisor gives up."""

    first_delay: float = RESTART_DELAY
    max_delay: float = RESTART_DELAY_CAP
    stable_after: float = STABLE_AFTER
    max_deaths: int = MAX_DEATHS
    window: float = DEATH_WINDOW


@dataclass
class Restarts:
    """The deaths of one worker process slot, and the pause before its next start."""

    policy: RestartPolicy
    deaths: deque[float] = field(default_factory=deque)
    _delay: float = field(init=False)

    def __post_init__(self) -> None:
        self._delay = self.policy.first_delay

    def after_death(self, uptime: float, now: float) -> float | None:
        """Record a death at ``now`` after ``uptime`` seconds up; return the pause before
        the restart, or None when this slot died too often within the window."""
        policy = self.policy
        if uptime >= policy.stable_after:
            self._delay = policy.first_delay
        self.deaths.append(now)
        while self.deaths[0] <= now - policy.window:
            self.deaths.popleft()
        if len(self.deaths) > policy.max_deaths:
            return None
        delay, self._delay = self._delay, min(self._delay * 2, policy.max_delay)
        return delay


# -- the supervisor ------------------------------------------------------------------------


@dataclass(eq=False)
class _Child:
    """One slot: what it runs, its restarts, and its process while one runs."""

    spec: ChildSpec
    restarts: Restarts
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    stop_code: int | None = None
    """How the process running when the supervisor stopped exited."""


class Supervisor:
    """Runs one worker process per spec and keeps them running until told to stop."""

    def __init__(
        self, specs: Sequence[ChildSpec], policy: RestartPolicy, drain_timeout: float
    ) -> None:
        self._children = [_Child(spec, Restarts(policy)) for spec in specs]
        self._policy = policy
        self._grace = drain_timeout + KILL_GRACE
        self._stopping = asyncio.Event()
        self._failure: AtpError | None = None
        self._killed_by: int | None = None

    async def run(self) -> int:
        """Supervise until SIGINT, SIGTERM or giving up; return the exit code.

        Raises the reason for giving up (an AtpError) once every child has stopped.
        """
        with self._signals():
            keepers = [asyncio.create_task(self._keep(child)) for child in self._children]
            stopped = asyncio.create_task(self._stopping.wait())
            await asyncio.wait([stopped, *keepers], return_when=asyncio.FIRST_COMPLETED)
            self._stopping.set()
            await self._wind_down(keepers)
        for keeper in keepers:
            keeper.result()  # a child that could not even be spawned
        return self._exit_code()

    # -- one slot --------------------------------------------------------------------

    async def _keep(self, child: _Child) -> None:
        """Run ``child`` again and again until the supervisor stops or gives up."""
        while not self._stopping.is_set():
            code = await self._run_once(child)
            if self._stopping.is_set():
                child.stop_code = code
                return
            delay = self._after_death(child, code)
            if delay is None:
                self._stopping.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self, child: _Child) -> int:
        spec = child.spec
        proc = await asyncio.create_subprocess_exec(
            *spec.argv, env=spec.env, stdin=asyncio.subprocess.DEVNULL, process_group=0
        )
        child.proc, child.started = proc, time.monotonic()
        if self._stopping.is_set():  # the stop came while it was being spawned
            proc.send_signal(signal.SIGKILL if self._killed_by else signal.SIGTERM)
        log.info("worker process %d started: pid %d, name %s", spec.number, proc.pid, spec.name)
        try:
            return await proc.wait()
        finally:
            child.proc = None

    def _after_death(self, child: _Child, code: int) -> float | None:
        """Log an unexpected death; return the pause before the restart, or None."""
        number, now = child.spec.number, time.monotonic()
        how, uptime = _describe(code), now - child.started
        if code in FATAL_EXITS:
            kind = InvalidInput if code == EXIT_USAGE else ConfigError
            why = "bad usage or configuration (its error is above); not restarting"
            self._fail(kind(f"worker process {number} {how}: {why}"))
            return None
        delay = child.restarts.after_death(uptime, now)
        if delay is None:
            window = self._policy.window
            deaths = len(child.restarts.deaths)
            why = f"died {deaths} times within {window:g} s (last {how}); giving up"
            self._fail(AtpError(f"worker process {number} {why}"))
            return None
        log.warning(
            "worker process %d %s after %.1f s; restarting it in %.1f s", number, how, uptime, delay
        )
        return delay

    def _fail(self, error: AtpError) -> None:
        log.error("%s; stopping the other worker processes", error.message)
        self._failure = self._failure or error

    # -- stopping --------------------------------------------------------------------

    async def _wind_down(self, keepers: list[asyncio.Task[None]]) -> None:
        """SIGTERM every child so it drains; SIGKILL those still running after the grace."""
        self._signal_all(signal.SIGTERM)
        _, pending = await asyncio.wait(keepers, timeout=self._grace)
        if pending:
            log.warning("worker processes still running after %.0f s: killing them", self._grace)
            self._signal_all(signal.SIGKILL)
            await asyncio.wait(pending)

    def _signal_all(self, signum: int) -> None:
        for child in self._children:
            if child.proc is not None and child.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)

    def _exit_code(self) -> int:
        if self._failure is not None:
            raise self._failure
        if self._killed_by is not None:
            return 128 + self._killed_by
        clean = (None, 0, -signal.SIGTERM)  # SIGTERM before its handlers: nothing held yet
        return 0 if all(c.stop_code in clean for c in self._children) else EXIT_FAILURE

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._stopping.is_set():
            log.info(
                "%s: draining %d worker processes (send it again to stop at once)",
                name,
                len(self._children),
            )
            self._stopping.set()
            return
        log.warning(
            "%s again: killing the worker processes; their running tasks run again "
            "after their lease",
            name,
        )
        self._killed_by = signum
        self._signal_all(signal.SIGKILL)


def _describe(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


# -- the child's side ----------------------------------------------------------------------


class Orphaned:
    """A runnable that returns once this process's supervisor is gone, so the worker beside
    it drains and exits instead of running on unsupervised."""

    def __init__(self, supervisor_pid: int) -> None:
        self._pid = supervisor_pid

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and os.getppid() == self._pid:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PARENT_CHECK)
        if not stop.is_set():
            log.warning("supervisor (pid %d) is gone: draining and stopping", self._pid)
