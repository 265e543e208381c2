"""The lifecycle emitter: names pinned to the hookspecs, listener tuples kept current."""

import typing

from atp.core import hookspecs
from atp.core.plugins import HookEmitter, Lifecycle, hookimpl, make_plugin_manager

PROVIDERS = {
    "atp_configure",
    "atp_url_schemes",
    "atp_make_transport",
    "atp_make_store",
    "atp_make_coordinator",
    "atp_make_limiter",
    "atp_interceptors",
    "atp_http_mounts",
}


def test_every_lifecycle_name_is_a_hookspec_and_every_broadcast_hook_is_named():
    specs = {name for name in dir(hookspecs) if name.startswith("atp_")}
    assert set(typing.get_args(Lifecycle)) == specs - PROVIDERS


class Listener:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def atp_worker_stopped(self, worker: str) -> None:
        self.seen.append(worker)


def test_a_plugin_registered_after_an_emit_is_called_and_one_unregistered_is_not():
    manager = make_plugin_manager(builtins=(), entry_points=False)
    emit = HookEmitter(manager)
    emit("atp_worker_stopped", worker="w0")
    assert not emit.wants("atp_worker_stopped")
    listener = Listener()
    manager.register(listener)
    emit("atp_worker_stopped", worker="w1")
    assert emit.wants("atp_worker_stopped")
    manager.unregister(listener)
    emit("atp_worker_stopped", worker="w2")
    assert listener.seen == ["w1"]
