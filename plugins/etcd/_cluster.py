"""The etcd calls the coordinator makes, over aetcd, with failover between members.

Each member gets its own aetcd client (one gRPC channel), opened lazily. A call goes to
the member that answered last; if that member cannot be reached or does not answer within
the timeout, the same call goes to the next member, and so on once round the cluster.
Every call here may be repeated safely: a write is guarded by a compare in its
transaction, a lease granted twice runs out on its own. Nothing outside this module sees
an aetcd or gRPC type: failures become ``BackendUnavailable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aetcd  # type: ignore[import-untyped]
import aetcd.exceptions  # type: ignore[import-untyped]

from atp.core.errors import BackendUnavailable
from atp.plugins.etcd._url import EtcdTarget

__all__ = ["Cluster", "Entry", "Revision", "lease_gone"]

T = TypeVar("T")
_UNREACHABLE = (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)
_CHANNEL = {"grpc.max_reconnect_backoff_ms": 2000, "grpc.initial_reconnect_backoff_ms": 200}
"""A member that comes back is used again within seconds, not gRPC's default two minutes."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One key as etcd holds it."""

    value: bytes
    create_revision: int
    lease: int
    """The etcd lease the key is attached to (0: none)."""


@dataclass(frozen=True, slots=True)
class Revision:
    """One key's value and the revision of its last change (0: the key does not exist)."""

    value: bytes
    mod_revision: int


class Cluster:
    """The etcd members of one URL; every method is one etcd request, retried on failover."""

    def __init__(self, target: EtcdTarget) -> None:
        self._target = target
        self._clients: dict[int, Any] = {}
        self._current = 0

    async def get(self, key: bytes) -> Entry | None:
        """Read ``key`` (linearizable)."""
        found = await self._call(lambda client: client.get(key))
        return None if found is None else Entry(found.value, found.create_revision, found.lease)

    async def create(self, key: bytes, value: bytes, lease: int) -> int | None:
        """Put ``key`` if it does not exist; return its create revision, or None if it did."""

        async def create(client: Any) -> int | None:
            tx = client.transactions
            done, responses = await client.transaction(
                compare=[tx.create(key) == 0],
                success=[tx.put(key, value, lease=lease), tx.get(key)],
                failure=[],
            )
            return int(responses[1][0][1].create_revision) if done else None

        return await self._call(create)

    async def move(self, key: bytes, value: bytes, create_revision: int, lease: int) -> bool:
        """Attach ``key`` to ``lease`` if it still has this value and create revision."""

        async def move(client: Any) -> bool:
            tx = client.transactions
            done, _ = await client.transaction(
                compare=[tx.create(key) == create_revision, tx.value(key) == value],
                success=[tx.put(key, value, lease=lease)],
                failure=[],
            )
            return bool(done)

        return await self._call(move)

    async def get_prefix(self, prefix: bytes) -> list[Entry]:
        """Read every key under ``prefix`` (linearizable), in key order."""
        found = await self._call(lambda client: client.get_prefix(prefix))
        return [Entry(kv.value, kv.create_revision, kv.lease) for kv in found.kvs]

    async def put_all(self, items: Sequence[tuple[bytes, bytes]], lease: int) -> None:
        """Put each (key, value), attached to ``lease``, in one transaction (keep it within
        etcd's ``--max-txn-ops``, 128 by default)."""

        async def put_all(client: Any) -> None:
            puts = [client.transactions.put(key, value, lease=lease) for key, value in items]
            await client.transaction(compare=[], success=puts, failure=[])

        await self._call(put_all)

    async def delete_all(self, keys: Sequence[bytes]) -> None:
        """Delete each key in one transaction (within ``--max-txn-ops``); absent keys are
        no error."""

        async def delete_all(client: Any) -> None:
            deletes = [client.transactions.delete(key) for key in keys]
            await client.transaction(compare=[], success=deletes, failure=[])

        await self._call(delete_all)

    async def swap(
        self, key: bytes, value: bytes, mod_revision: int, lease: int
    ) -> tuple[bool, Revision]:
        """Put ``key`` on ``lease`` if its last change is still ``mod_revision`` (0: if it
        does not exist); return whether it was put, and the key as it is now."""

        async def swap(client: Any) -> tuple[bool, Revision]:
            tx = client.transactions
            done, responses = await client.transaction(
                compare=[tx.mod(key) == mod_revision],
                success=[tx.put(key, value, lease=lease), tx.get(key)],
                failure=[tx.get(key)],
            )
            found = responses[-1]
            now = Revision(found[0][0], found[0][1].mod_revision) if found else Revision(b"", 0)
            return bool(done), now

        return await self._call(swap)

    async def grant(self, seconds: int) -> int:
        """Create an etcd lease of ``seconds`` (etcd may raise it to its minimum, 2 s)."""
        lease = await self._call(lambda client: client.lease(seconds))
        return int(lease.id)

    async def keep_alive(self, lease: int) -> int:
        """Restart ``lease``'s time to live; return it in seconds, 0 if the lease is gone."""
        reply = await self._call(lambda client: client.refresh_lease(lease))
        return int(reply.TTL) if reply is not None else 0

    async def time_to_live(self, lease: int) -> int:
        """Whole seconds ``lease`` has left (0 in its last second); -1 if it is gone."""
        info = await self._call(lambda client: client.get_lease_info(lease, keys=False))
        return int(info.TTL)

    async def revoke(self, lease: int) -> None:
        """End ``lease`` and delete its keys at once; a lease already gone is no error."""
        try:
            await self._call(lambda client: client.revoke_lease(lease))
        except BackendUnavailable as exc:
            if _code(exc.__cause__) != "NOT_FOUND":
                raise

    async def close(self) -> None:
        """Close every member's channel."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    async def _call(self, request: Callable[[Any], Awaitable[T]]) -> T:
        failures = []
        for _ in self._target.endpoints:
            index = self._current
            try:
                return await request(self._client(index))
            except _UNREACHABLE as exc:
                failures.append(f"{self._address(index)}: {exc}")
                self._current = (index + 1) % len(self._target.endpoints)
            except aetcd.exceptions.ClientError as exc:
                raise BackendUnavailable(
                    f"etcd at {self._address(index)} refused the request: {exc}"
                ) from exc
        raise BackendUnavailable(
            f"no etcd member of {self._target.url!r} answered: " + "; ".join(failures)
        )

    def _client(self, index: int) -> Any:
        client = self._clients.get(index)
        if client is None:
            host, port = self._target.endpoints[index]
            host = f"[{host}]" if ":" in host else host  # aetcd joins host and port as given
            client = aetcd.Client(host, port, timeout=self._target.timeout, options=_CHANNEL)
            self._clients[index] = client
        return client

    def _address(self, index: int) -> str:
        host, port = self._target.endpoints[index]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def lease_gone(error: BackendUnavailable) -> bool:
    """Whether etcd refused a request because a lease it names no longer exists."""
    return _code(error.__cause__) == "NOT_FOUND"


def _code(error: BaseException | None) -> str | None:
    """The name of the gRPC status under an aetcd error (aetcd raises it from gRPC's)."""
    code = getattr(getattr(error, "__cause__", None), "code", None)
    return getattr(code(), "name", None) if callable(code) else None
