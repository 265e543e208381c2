"""How the command line reports failure: one line on stderr, and a stable exit code.

    0    success
    1    any other failure: a plugin broke, something unexpected, the user said no
    2    bad input: a usage error, or InvalidInput (subject, payload, delay, id, URL)
    3    NotFound: no task with that id
    4    StateConflict or AlreadyExists: the task's state forbids it; nothing was changed
    5    ConfigError or PluginError: a configuration atp cannot honour, found at start-up
    6    BackendUnavailable: a backend did not answer; trying again may work
    130  interrupted (Ctrl-C)

Scripts may rely on these numbers; they change only with a major version.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

from atp.core.errors import (
    AlreadyExists,
    AtpError,
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    NotFound,
    PluginError,
    StateConflict,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_CONFLICT",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "exit_code",
    "report",
    "report_unexpected",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_CONFIG = 5
EXIT_UNAVAILABLE = 6
EXIT_INTERRUPTED = 130

_CODES: tuple[tuple[type[AtpError], int], ...] = (
    (InvalidInput, EXIT_USAGE),
    (NotFound, EXIT_NOT_FOUND),
    (StateConflict, EXIT_CONFLICT),
    (AlreadyExists, EXIT_CONFLICT),
    (ConfigError, EXIT_CONFIG),
    (PluginError, EXIT_CONFIG),
    (BackendUnavailable, EXIT_UNAVAILABLE),
)


def exit_code(error: AtpError) -> int:
    """Return the exit code documented for ``error``'s kind."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILURE


def report(message: str) -> None:
    """Print ``error: message`` on stderr, on one line."""
    click.echo(f"error: {' '.join(message.split())}", err=True)


def report_unexpected(exc: BaseException) -> None:
    """Report a failure atp did not raise on purpose; the traceback only at DEBUG level."""
    report(f"unexpected {type(exc).__name__}: {exc} (run with --log-level DEBUG for details)")
    if logging.getLogger("atp").isEnabledFor(logging.DEBUG):
        traceback.print_exception(exc, file=sys.stderr)
