"""What every command shares: the global options, the settings they give, the platform."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from atp.adapters.cli._logging import configure_logging
from atp.core.errors import BackendUnavailable
from atp.core.platform import Platform
from atp.core.service import TaskService
from atp.core.settings import Settings

__all__ = ["Options", "opened", "pass_options"]

log = logging.getLogger("atp.cli")

PROBE = "atp-startup-probe"
"""The task id and lease name read once at start-up: no such task or lease exists."""

S = TypeVar("S")
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """The global options: a config file and settings that override it and ``ATP_*``."""

    config: str | os.PathLike[str] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, *, quiet: bool = False, **more: Any) -> Settings:
        """Load the settings (file, environment, options, then ``more``) and set up logging."""
        settings = Settings.load(path=self.config, **{**self.overrides, **more})
        configure_logging(settings, quiet=quiet)
        return settings

    def call(self, operation: Callable[[TaskService], Awaitable[T]]) -> T:
        """Run ``operation`` on a TaskService over a fresh platform, then close the platform."""
        return self.using(TaskService, operation)

    def using(self, service: Callable[[Platform], S], operation: Callable[[S], Awaitable[T]]) -> T:
        """Run ``operation`` on the ``service`` built over a fresh platform, then close it."""
        return self.on_platform(lambda platform: operation(service(platform)))

    def on_platform(self, operation: Callable[[Platform], Awaitable[T]]) -> T:
        """Run ``operation`` on a fresh platform from these settings, then close it."""
        settings = self.settings(quiet=True)
        # A one-shot command: plugins must not hold its exit (an exporter's final flush).
        settings = settings.replace(extra={**settings.extra, "process": {"short_lived": True}})

        async def run() -> T:
            async with Platform.build(settings) as platform:
                return await operation(platform)

        return asyncio.run(run())


pass_options = click.make_pass_decorator(Options)


async def opened(platform: Platform) -> Platform:
    """Read the store and the coordinator once before a long-running process starts, so
    one that cannot be used (a file that is no database, a Redis that evicts keys) stops
    it here with one error instead of failing every tick. The platform is closed then.

    A backend that does not answer yet only gets a warning: the runtimes wait for it.
    """
    try:
        await platform.store.get([PROBE])
        await platform.coordinator.holder(PROBE)
    except BackendUnavailable as exc:
        log.warning("a backend is not reachable yet, carrying on: %s", exc.message)
    except BaseException:
        await platform.close()
        raise
    return platform
