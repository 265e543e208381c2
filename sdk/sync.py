"""``SyncClient``: the Client for code that is not async (scripts, WSGI web apps).

It runs its own event loop in one background thread and hands every call to it, so any
number of threads may share one SyncClient::

    with SyncClient.connect("sqlite:///atp.db") as client:
        published = client.publish("sms.send", {"to": "+33..."}, delay="5m")
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from atp.core.plugins import PluginManager
from atp.core.settings import Settings
from atp.sdk.client import Client, Published, PublishRequest

__all__ = ["SyncClient"]

T = TypeVar("T")
P = ParamSpec("P")

CLOSE_TIMEOUT = 30.0
"""Seconds ``close`` waits for the client's connections to close."""


class _Blocking(Generic[P, T]):
    """A ``Client`` coroutine method as a blocking ``SyncClient`` method.

    The signature and the docstring are the Client method's, for mypy and for ``help``.
    """

    def __init__(self, method: Callable[Concatenate[Client, P], Coroutine[Any, Any, T]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self.__wrapped__ = method

    @overload
    def __get__(self, instance: None, owner: type[SyncClient]) -> _Blocking[P, T]: ...

    @overload
    def __get__(self, instance: SyncClient, owner: type[SyncClient]) -> Callable[P, T]: ...

    def __get__(
        self, instance: SyncClient | None, owner: type[SyncClient]
    ) -> _Blocking[P, T] | Callable[P, T]:
        if instance is None:
            return self
        method = self._method

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return instance._call(method(instance._client, *args, **kwargs))

        return call


class SyncClient:
    """A blocking facade over ``Client``: the same methods, each returning its result.

    Build it with ``SyncClient.connect(...)`` (same arguments as ``Client.connect``) and
    close it with ``with`` or ``close()``. A call from the client's own loop thread (a
    hook running there) would deadlock and raises RuntimeError instead. ``wait`` blocks
    the calling thread until the task is final.
    """

    def __init__(self, factory: Callable[[], Client]) -> None:
        """Start the loop thread and build the Client there with ``factory``."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="atp-sync-client", daemon=True
        )
        self._thread.start()
        try:
            self._client = self._call(_build(factory))
        except BaseException:
            _stop(self._loop, self._thread, None)
            raise
        self._finalizer = weakref.finalize(self, _stop, self._loop, self._thread, self._client)

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        plugins: PluginManager | None = None,
        token: str | None = None,
    ) -> SyncClient:
        """As ``Client.connect``: a store or server URL and/or settings; no I/O until the
        first call."""
        return cls(lambda: Client.connect(url, settings=settings, plugins=plugins, token=token))

    @property
    def client(self) -> Client:
        """The async Client underneath; use it only on this client's loop thread."""
        return self._client

    request = staticmethod(Client.request)
    publish = _Blocking(Client.publish)

    def publish_many(self, requests: Iterable[PublishRequest]) -> builtins.list[Published]:
        """As ``Client.publish_many``; ``requests`` is read in the calling thread."""
        return self._call(self._client.publish_many(builtins.list(requests)))

    flush_outbox = _Blocking(Client.flush_outbox)

    get = _Blocking(Client.get)
    list = _Blocking(Client.list)
    counts = _Blocking(Client.counts)
    wait = _Blocking(Client.wait)
    cancel = _Blocking(Client.cancel)
    dead_letters = _Blocking(Client.dead_letters)
    requeue = _Blocking(Client.requeue)
    purge = _Blocking(Client.purge)

    add_schedule = _Blocking(Client.add_schedule)
    get_schedule = _Blocking(Client.get_schedule)
    list_schedules = _Blocking(Client.list_schedules)
    pause_schedule = _Blocking(Client.pause_schedule)
    resume_schedule = _Blocking(Client.resume_schedule)
    trigger_schedule = _Blocking(Client.trigger_schedule)
    remove_schedule = _Blocking(Client.remove_schedule)

    set_limit = _Blocking(Client.set_limit)
    remove_limit = _Blocking(Client.remove_limit)
    limits = _Blocking(Client.limits)
    pause = _Blocking(Client.pause)
    resume = _Blocking(Client.resume)

    workers = _Blocking(Client.workers)
    breakers = _Blocking(Client.breakers)

    register_workflow = _Blocking(Client.register_workflow)
    get_workflow = _Blocking(Client.get_workflow)
    list_workflows = _Blocking(Client.list_workflows)
    start_workflow = _Blocking(Client.start_workflow)
    signal = _Blocking(Client.signal)
    get_run = _Blocking(Client.get_run)
    list_runs = _Blocking(Client.list_runs)
    cancel_run = _Blocking(Client.cancel_run)

    def close(self) -> None:
        """Close the client's connections and stop its thread; idempotent."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sync{self._client!r}"

    def _call(self, awaitable: Awaitable[T]) -> T:
        if threading.current_thread() is self._thread:
            _discard(awaitable)
            raise RuntimeError("a SyncClient cannot be called from its own loop thread")
        if self._loop.is_closed() or not self._thread.is_alive():
            _discard(awaitable)
            raise RuntimeError("this SyncClient is closed")
        future = asyncio.run_coroutine_threadsafe(_await(awaitable), self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # the caller was interrupted (KeyboardInterrupt): stop the call
            raise


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _build(factory: Callable[[], Client]) -> Client:
    return factory()


def _discard(awaitable: Awaitable[object]) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()  # a coroutine never awaited would warn


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: Client | None) -> None:
    """Close the client on its loop, cancel what is left, then stop and close the loop."""
    if loop.is_closed():
        return
    if threading.current_thread() is thread:  # collected on its own thread: cannot join
        loop.call_soon(loop.stop)
        return
    if thread.is_alive():
        future = asyncio.run_coroutine_threadsafe(_shutdown(client), loop)
        try:
            future.result(CLOSE_TIMEOUT)
        except Exception:
            future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
    loop.close()


async def _shutdown(client: Client | None) -> None:
    try:
        if client is not None:
            await client.close()
    finally:
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()
