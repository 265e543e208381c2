"""Running long-lived components until a signal: drain on the first, stop at once on the second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from atp.core.platform import Platform

__all__ = ["Runnable", "exit_past_stuck_threads", "serve"]

log = logging.getLogger("atp.cli")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Runnable(Protocol):
    """A Worker or a Scheduler: runs until ``stop`` is set, then winds down."""

    async def run(self, stop: asyncio.Event) -> None: ...


async def serve(platform: Platform, runnables: Sequence[Runnable]) -> None:
    """Run ``runnables`` together until SIGINT or SIGTERM, then let them drain and close.

    If one of them fails, the others are stopped the same way and its error is raised.
    A second signal exits the process at once: running tasks are then recovered from the
    store once their leases run out.
    """
    stop = asyncio.Event()
    try:
        with _signals(stop):
            jobs = [asyncio.create_task(r.run(stop)) for r in runnables]
            await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            results = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        await platform.close()
    for result in results:
        if isinstance(result, BaseException):
            raise result


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, _on_signal, stop, signum)
    try:
        yield
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    name = signal.Signals(signum).name
    if stop.is_set():
        log.warning("%s again: stopping now; running tasks run again after their lease", name)
        _exit_now(128 + signum)
    log.info("%s: draining running tasks (send it again to stop at once)", name)
    stop.set()


def exit_past_stuck_threads(code: int) -> None:
    """Exit with ``code`` even if handler threads still run (a sync handler that hangs).

    Python would wait for them at exit forever; their tasks were already put back.
    """
    stuck = [t for t in threading.enumerate() if t.name.startswith("atp-handler") and t.is_alive()]
    if stuck:
        log.warning("%d handler threads still running; exiting without them", len(stuck))
        _exit_now(code)


def _exit_now(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
