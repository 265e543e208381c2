"""The plugin manager: built-ins and third-party plugins come in through the same door.

Built-ins are a tuple of module names (pytest's ``default_plugins``); third-party plugins
register under the entry-point group ``atp``; ``Settings.plugins`` adds modules by name.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import pluggy
from pluggy import HookImpl

from atp.core import hookspecs
from atp.core.errors import ConfigError, PluginError
from atp.core.ports import Clock, Coordinator, TaskStore, Transport
from atp.core.settings import Settings
from atp.core.urls import mask

__all__ = [
    "BUILTIN_PLUGINS",
    "HookEmitter",
    "Lifecycle",
    "PluginInfo",
    "PluginManager",
    "hookimpl",
    "make_plugin_manager",
]

log = logging.getLogger("atp.plugins")
hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)

BUILTIN_PLUGINS: tuple[str, ...] = (
    "atp.plugins.memory",
    "atp.plugins.sqlite",
    "atp.plugins.local",
    "atp.plugins.redis",
    "atp.plugins.etcd",
    "atp.plugins.nats",
)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin, as ``atp plugins`` shows it."""

    name: str
    distribution: str
    hooks: tuple[str, ...]
    schemes: dict[str, list[str]]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with atp's hookspecs, refusing ``async def`` hook implementations."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.generation = 0
        """Grows on every register and unregister, so emitters know to rebuild."""

    def register(self, plugin: object, name: str | None = None) -> str | None:
        self.generation += 1
        registered = super().register(plugin, name)
        for caller in self.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and inspect.iscoroutinefunction(impl.function):
                    self.unregister(plugin)
                    raise PluginError(
                        f"plugin {impl.plugin_name!r}: hook {caller.name} is 'async def "
                        f"{impl.function.__name__}{inspect.signature(impl.function)}'; atp "
                        "hooks are synchronous: return an object with async methods instead"
                    )
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self.generation += 1
        return super().unregister(plugin, name)

    def make_transport(self, url: str, settings: Settings, clock: Clock) -> Transport:
        """Build the Transport serving ``url``; ConfigError if no plugin owns its scheme."""
        found = self.hook.atp_make_transport(url=url, settings=settings, clock=clock)
        return cast(Transport, self._provided(found, "transport", url))

    def make_store(self, url: str, settings: Settings, clock: Clock) -> TaskStore:
        """Build the TaskStore serving ``url``; ConfigError if no plugin owns its scheme."""
        found = self.hook.atp_make_store(url=url, settings=settings, clock=clock)
        return cast(TaskStore, self._provided(found, "store", url))

    def make_coordinator(self, url: str, settings: Settings, clock: Clock) -> Coordinator:
        """Build the Coordinator serving ``url``; ConfigError if no plugin owns its scheme."""
        found = self.hook.atp_make_coordinator(url=url, settings=settings, clock=clock)
        return cast(Coordinator, self._provided(found, "coordinator", url))

    def schemes(self, kind: str) -> list[str]:
        """Every URL scheme some plugin serves for ``kind``."""
        found: set[str] = set()
        for declared in self.hook.atp_url_schemes():
            found.update(declared.get(kind, ()))
        return sorted(found)

    def info(self) -> list[PluginInfo]:
        """Describe every registered plugin."""
        distributions = self.list_plugin_distinfo()
        dists = {
            id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in distributions
        }
        result = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda item: str(item[0])):
            if plugin is None or name is None:
                continue
            hooks = tuple(sorted(c.name for c in self.get_hookcallers(plugin) or ()))
            schemes_impl = getattr(plugin, "atp_url_schemes", None)
            schemes = schemes_impl() if callable(schemes_impl) else {}
            dist = dists.get(id(plugin), "atp (built-in)" if name in BUILTIN_PLUGINS else "-")
            result.append(PluginInfo(str(name), dist, hooks, schemes))
        return result

    def _provided(self, found: object, kind: str, url: str) -> object:
        if found is None:
            scheme = url.split("://", 1)[0] if "://" in url else url
            known = ", ".join(s + "://" for s in self.schemes(kind)) or "none"
            raise ConfigError(
                f"no plugin serves {kind} URL scheme {scheme!r} (in {mask(url)!r}); "
                f"schemes served: {known}"
            )
        return found


def make_plugin_manager(
    settings: Settings | None = None,
    *,
    builtins: Sequence[str] = BUILTIN_PLUGINS,
    entry_points: bool = True,
) -> PluginManager:
    """Return a manager with the built-ins, the ``atp`` entry points and ``settings.plugins``."""
    settings = settings or Settings()
    manager = PluginManager()
    for module_name in (*builtins, *settings.plugins):
        manager.register(_import(module_name), module_name)
    if entry_points:
        manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    manager.hook.atp_configure.call_historic(kwargs={"settings": settings})
    return manager


def _import(module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"plugin module {module_name!r} cannot be imported: {exc}") from exc


Lifecycle = Literal[
    "atp_platform_built",
    "atp_task_headers",
    "atp_task_enqueued",
    "atp_task_dispatched",
    "atp_task_started",
    "atp_task_succeeded",
    "atp_task_failed",
    "atp_task_dead",
    "atp_task_cancelled",
    "atp_task_recovered",
    "atp_cron_fired",
    "atp_workflow_run_started",
    "atp_workflow_step_finished",
    "atp_workflow_run_finished",
    "atp_leader_acquired",
    "atp_leader_lost",
    "atp_scheduler_started",
    "atp_scheduler_stopped",
    "atp_worker_started",
    "atp_worker_stopped",
    "atp_breaker_changed",
]
"""The hooks the core fires through a HookEmitter: a misspelt name fails mypy."""


class HookEmitter:
    """Fires lifecycle hooks with every listener isolated from the others.

    pluggy re-raises the first exception and skips the remaining listeners; here each
    listener is called on its own, a failure is logged with the plugin's name and counted
    in ``failures``, and the caller never sees it. Listener tuples are built once per
    hook and rebuilt only when a plugin is registered or unregistered, so a hook nobody
    listens to costs one dict lookup.
    """

    def __init__(self, manager: PluginManager) -> None:
        self._manager = manager
        self.failures: Counter[str] = Counter()
        self._listeners: dict[str, tuple[HookImpl, ...]] = {}
        self._generation = -1

    def wants(self, hook: Lifecycle) -> bool:
        """Whether any plugin listens to ``hook``: callers skip building its arguments."""
        return bool(self._of(hook))

    def __call__(self, hook: Lifecycle, **kwargs: Any) -> None:
        if self._of(hook):
            self.collect(hook, **kwargs)

    def collect(self, hook: Lifecycle, **kwargs: Any) -> list[Any]:
        """Call ``hook`` like ``__call__`` and return the answers that are not None."""
        answers: list[Any] = []
        for impl in self._of(hook):
            try:
                answer = impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception:
                self.failures[impl.plugin_name] += 1
                log.exception("plugin %r failed in hook %s", impl.plugin_name, hook)
                continue
            if answer is not None:
                answers.append(answer)
        return answers

    def _of(self, hook: str) -> tuple[HookImpl, ...]:
        if self._manager.generation != self._generation:
            self._listeners.clear()
            self._generation = self._manager.generation
        found = self._listeners.get(hook)
        if found is None:
            found = tuple(reversed(getattr(self._manager.hook, hook).get_hookimpls()))
            self._listeners[hook] = found
        return found
