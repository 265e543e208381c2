"""A Platform is one process's view of a deployment: its settings and connected backends."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from atp.core.clock import SystemClock
from atp.core.dispatch import Dispatcher
from atp.core.errors import ConfigError
from atp.core.handlers import Handler
from atp.core.plugins import HookEmitter, PluginManager, make_plugin_manager
from atp.core.ports import Clock, Coordinator, FusingStore, TaskStore, Transport
from atp.core.settings import Settings
from atp.core.urls import mask

__all__ = ["Platform"]

log = logging.getLogger("atp.platform")


@dataclass(eq=False)
class Platform:
    """The backends of a deployment as this process sees them, built from settings.

    ``local`` says this process runs the workers its transport feeds (``atp dev``, tests):
    only then may a process-local transport carry tasks.
    """

    settings: Settings
    store: TaskStore
    transport: Transport
    coordinator: Coordinator
    clock: Clock
    plugins: PluginManager
    emit: HookEmitter
    local: bool = False
    fused: bool = False
    """The store and transport do store and transport work in one call (``FusingStore``)."""
    dispatcher: Dispatcher = field(init=False, repr=False)
    """Publishes READY tasks over ``transport``: the producers' and the scheduler's door."""

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.transport, self.store, self.clock, self.emit)

    def __setattr__(self, name: str, value: Any) -> None:
        # A backend replaced on a running platform (tests wrap one in a fault injector)
        # is the one the dispatcher uses from then on.
        super().__setattr__(name, value)
        dispatcher = self.__dict__.get("dispatcher")
        if dispatcher is not None and name in ("transport", "store"):
            setattr(dispatcher, name, value)

    @classmethod
    def build(
        cls,
        settings: Settings | None = None,
        *,
        plugins: PluginManager | None = None,
        clock: Clock | None = None,
        local: bool = False,
    ) -> Platform:
        """Build every backend from ``settings`` through the plugins; no I/O happens yet.

        Raises ConfigError for a URL no plugin serves.
        """
        settings = settings or Settings.load()
        plugins = plugins or make_plugin_manager(settings)
        clock = clock or SystemClock()
        store = plugins.make_store(settings.store, settings, clock)
        transport = plugins.make_transport(settings.transport, settings, clock)
        platform = cls(
            settings=settings,
            store=store,
            transport=transport,
            coordinator=plugins.make_coordinator(settings.coordinator_url, settings, clock),
            clock=clock,
            plugins=plugins,
            emit=HookEmitter(plugins),
            local=local,
            fused=isinstance(store, FusingStore) and store.fuse(transport),
        )
        platform.emit("atp_platform_built", platform=platform)
        return platform

    @property
    def direct_publish(self) -> bool:
        """Whether producers here publish READY tasks straight to the transport.

        A process-local transport in a process that runs no workers would swallow them:
        such producers leave tasks in the store for the scheduler's forwarder.
        """
        return self.local or self.transport.capabilities.shared

    def check_scheduler(self) -> None:
        """Refuse a scheduler that would publish into a process-local queue no worker reads."""
        if not (self.transport.capabilities.shared or self.local):
            raise ConfigError(
                f"transport {mask(self.settings.transport)!r} is process-local: a separate "
                "`atp scheduler` would publish into a queue no worker reads; use `atp dev`, "
                "or a shared transport such as redis:// or nats://"
            )

    def check_worker(self, handlers: Iterable[Handler]) -> None:
        """Refuse, before anything runs, a worker configuration the transport cannot honour."""
        caps = self.transport.capabilities
        if not (caps.shared or self.local):
            raise ConfigError(
                f"transport {mask(self.settings.transport)!r} is process-local: its workers must "
                "run in the process that schedules the tasks (`atp dev`); use a shared transport "
                "such as redis:// or nats:// for a separate `atp worker`"
            )
        if caps.lease_extension or caps.lease is None:
            return
        for handler in handlers:
            timeout = handler.timeout or self.settings.timeout
            if timeout > caps.lease:
                raise ConfigError(
                    f"handler {handler.pattern!r} may run {timeout:g}s but transport "
                    f"{mask(self.settings.transport)!r} cannot extend its {caps.lease:g}s lease: "
                    "lower the timeout or raise the transport's lease"
                )

    async def close(self) -> None:
        """Close every backend, the transport first; errors are logged, not raised."""
        for name in ("transport", "coordinator", "store"):
            try:
                await getattr(self, name).close()
            except Exception:
                log.exception("closing the %s failed", name)

    async def __aenter__(self) -> Platform:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
