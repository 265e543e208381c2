"""A worker's presence in the fleet: it announces itself in the coordinator's registry
every ``heartbeat``, listed for ``registry_ttl`` (ADR 0041), and withdraws when it stops.

A worker killed stops announcing and drops out once its TTL has passed. Presence never
stops a worker: a failed announcement is logged (the first one, then at most once a
minute) and tried again on the next beat. A coordinator that keeps no registry turns
presence off with one INFO line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from importlib import metadata
from typing import Protocol

from atp.core.model import Task
from atp.core.platform import Platform
from atp.core.ports import Member, Registry

__all__ = ["ROLE", "WARN_EVERY", "Announced", "Presence", "atp_version"]

log = logging.getLogger("atp.worker.presence")

ROLE = "worker"
"""The registry role workers announce themselves with."""
WARN_EVERY = 60.0
"""Seconds between two warnings while announcements keep failing."""


def atp_version() -> str:
    """The installed atp distribution's version (as ``atp --version`` reads it)."""
    try:
        return metadata.version("atp")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


class Announced(Protocol):
    """What presence reads off the worker it announces (``atp.core.worker.Worker``)."""

    @property
    def name(self) -> str: ...

    @property
    def group(self) -> str: ...

    @property
    def patterns(self) -> Sequence[str]: ...

    @property
    def concurrency(self) -> int: ...

    @property
    def running(self) -> Sequence[Task]:
        """The tasks whose attempts are in flight."""
        ...


class Presence:
    """Announces one worker, from its start until its stop."""

    def __init__(self, platform: Platform, worker: Announced) -> None:
        self._platform = platform
        self._worker = worker
        self._clock = platform.clock
        self._every = platform.settings.heartbeat
        self._ttl = platform.settings.registry_ttl
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._version = atp_version()
        self._started_at = self._clock.now()
        self._failing = 0
        """Announcements failed in a row."""
        self._warned_at = 0.0

    def member(self) -> Member:
        """The worker as it announces itself now."""
        worker = self._worker
        return Member(
            name=worker.name,
            role=ROLE,
            host=self._host,
            pid=self._pid,
            version=self._version,
            group=worker.group,
            patterns=tuple(worker.patterns),
            concurrency=worker.concurrency,
            running=len(worker.running),
            started_at=self._started_at,
            seen_at=self._clock.now(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Announce now and every ``heartbeat`` until ``stop`` is set, then withdraw.
        Never raises."""
        registry = self._platform.coordinator
        if not isinstance(registry, Registry):
            log.info(
                "worker %s: the coordinator %s keeps no registry: this worker is not listed "
                "in atp workers ls",
                self._worker.name,
                type(registry).__name__,
            )
            return
        while not stop.is_set():
            await self._announce(registry)
            await self._clock.wait(stop, self._every)
        await self._withdraw(registry)

    async def _announce(self, registry: Registry) -> None:
        try:
            await registry.announce([self.member()], ttl=self._ttl)
        except Exception as exc:  # presence is a report, never a reason to stop working
            self._failed(exc)
            return
        if self._failing:
            log.info(
                "worker %s: announced again after %d failed attempts",
                self._worker.name,
                self._failing,
            )
            self._failing = 0

    def _failed(self, exc: Exception) -> None:
        self._failing += 1
        now = self._clock.now()
        if self._failing == 1 or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "worker %s: announcing in the registry failed (%d in a row), retrying every "
                "%gs: %s",
                self._worker.name,
                self._failing,
                self._every,
                exc,
            )

    async def _withdraw(self, registry: Registry) -> None:
        try:
            await registry.withdraw([self._worker.name])
        except Exception as exc:  # it drops out after its TTL instead
            log.warning(
                "worker %s: withdrawing from the registry failed, listed for up to %gs more: %s",
                self._worker.name,
                self._ttl,
                exc,
            )
