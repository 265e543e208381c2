"""What every command shares: the global options, the settings they give, the platform."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from atp.adapters.cli._logging import configure_logging
from atp.core.platform import Platform
from atp.core.service import TaskService
from atp.core.settings import Settings

__all__ = ["Options", "pass_options"]

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

        async def run() -> T:
            async with Platform.build(settings) as platform:
                return await operation(platform)

        return asyncio.run(run())


pass_options = click.make_pass_decorator(Options)
