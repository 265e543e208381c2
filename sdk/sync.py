"""``SyncClient``: the Client for code that is not async (scripts, WSGI web apps).

It runs its own event loop in one background thread and hands every call to it, so any
number of threads may share one SyncClient::

    with SyncClient.connect("sqlite:///atp.db") as client:
        published = client.publish("sms.send", {"to": "+33..."}, delay="5m")
"""

from __future__ import annotations

import asyncio
import builtins
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TypeVar

from atp.core.model import JSON, RetryPolicy, State, TaskRecord
from atp.core.plugins import PluginManager
from atp.core.ports import Page
from atp.core.schedules import Misfire, Overlap, Schedule
from atp.core.settings import Settings
from atp.sdk._workflows import SyncWorkflowMethods
from atp.sdk.client import UNSET, Client, Duration, Instant, Published, PublishRequest, _Unset

__all__ = ["SyncClient"]

T = TypeVar("T")

CLOSE_TIMEOUT = 30.0
"""Seconds ``close`` waits for the client's connections to close."""


class SyncClient(SyncWorkflowMethods):
    """A blocking facade over ``Client``: the same methods, each returning its result.

    Build it with ``SyncClient.connect(...)`` (same arguments as ``Client.connect``) and
    close it with ``with`` or ``close()``. A call from the client's own loop thread (a
    hook running there) would deadlock and raises RuntimeError instead.
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

    def publish(
        self,
        subject: str,
        payload: JSON = None,
        *,
        delay: Duration | None = None,
        run_at: Instant | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_attempts: int | None = None,
        timeout: Duration | None = None,
        priority: int = 0,
        retry: RetryPolicy | None = None,
    ) -> Published:
        """As ``Client.publish``."""
        return self._call(
            self._client.publish(
                subject,
                payload,
                delay=delay,
                run_at=run_at,
                idempotency_key=idempotency_key,
                headers=headers,
                max_attempts=max_attempts,
                timeout=timeout,
                priority=priority,
                retry=retry,
            )
        )

    def publish_many(self, requests: Iterable[PublishRequest]) -> builtins.list[Published]:
        """As ``Client.publish_many``."""
        return self._call(self._client.publish_many(builtins.list(requests)))

    def get(self, task_id: str) -> TaskRecord:
        """As ``Client.get``."""
        return self._call(self._client.get(task_id))

    def list(
        self,
        *,
        subject: str | None = None,
        states: State | str | Iterable[State | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """As ``Client.list``."""
        return self._call(
            self._client.list(subject=subject, states=states, cursor=cursor, limit=limit)
        )

    def counts(self) -> dict[tuple[str, State], int]:
        """As ``Client.counts``."""
        return self._call(self._client.counts())

    def wait(self, task_id: str, timeout: Duration | None = None) -> TaskRecord:
        """As ``Client.wait``: blocks the calling thread until the task is final."""
        return self._call(self._client.wait(task_id, timeout))

    def cancel(self, task_id: str) -> TaskRecord:
        """As ``Client.cancel``."""
        return self._call(self._client.cancel(task_id))

    def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page:
        """As ``Client.dead_letters``."""
        return self._call(self._client.dead_letters(subject=subject, cursor=cursor, limit=limit))

    def requeue(
        self, task_id: str, *, delay: Duration | None = None, payload: JSON | _Unset = UNSET
    ) -> TaskRecord:
        """As ``Client.requeue``."""
        return self._call(self._client.requeue(task_id, delay=delay, payload=payload))

    def purge(self, ids: Sequence[str] | None = None) -> int:
        """As ``Client.purge``."""
        return self._call(self._client.purge(ids))

    def add_schedule(
        self,
        name: str,
        expression: str,
        subject: str,
        payload: JSON = None,
        *,
        tz: str = "UTC",
        misfire: Misfire | str = Misfire.ONCE,
        overlap: Overlap | str = Overlap.ALLOW,
    ) -> Schedule:
        """As ``Client.add_schedule``."""
        return self._call(
            self._client.add_schedule(
                name, expression, subject, payload, tz=tz, misfire=misfire, overlap=overlap
            )
        )

    def get_schedule(self, name: str) -> Schedule:
        """As ``Client.get_schedule``."""
        return self._call(self._client.get_schedule(name))

    def list_schedules(self) -> builtins.list[Schedule]:
        """As ``Client.list_schedules``."""
        return self._call(self._client.list_schedules())

    def pause_schedule(self, name: str) -> Schedule:
        """As ``Client.pause_schedule``."""
        return self._call(self._client.pause_schedule(name))

    def resume_schedule(self, name: str) -> Schedule:
        """As ``Client.resume_schedule``."""
        return self._call(self._client.resume_schedule(name))

    def trigger_schedule(self, name: str) -> Published:
        """As ``Client.trigger_schedule``."""
        return self._call(self._client.trigger_schedule(name))

    def remove_schedule(self, name: str) -> None:
        """As ``Client.remove_schedule``."""
        self._call(self._client.remove_schedule(name))

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
