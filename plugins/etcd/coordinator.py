"""The etcd Coordinator: each atp lease is one key attached to an etcd lease.

A lease named ``N`` is the key ``<prefix>/leases/N``; its value is the owner, and it is
attached to an etcd lease whose TTL is the atp lease's ttl rounded up to whole seconds.
When the etcd lease runs out, or is revoked on release, etcd deletes the key.

- Taking a free name is a transaction that creates the key only if its create revision
  is 0 (it does not exist); the fencing token is the key's create revision. Revisions
  grow for the life of the cluster, so every new holder gets a larger token; a holder
  that renews or re-acquires keeps its key, hence its create revision and its token.
- Renewing with the same ttl is one etcd keep-alive of the lease; with another ttl, or
  from another process, the key moves to a fresh etcd lease in a transaction that checks
  owner and create revision.
- Only the owner can renew or release: both check the owner and token, and a key leaves
  its etcd lease only through its owner's transaction, so while that lease lives the key
  is the owner's.

Time is etcd's: ``expires_at`` is the clock's time before the request plus the ttl asked
for, never later than etcd's own expiry.

The registry (ADR 0041): member ``N`` is the key ``<prefix>/members/N``, its value the
member's JSON. Each announce puts its members' keys on one etcd lease (a put moves a key
off the lease of its previous announce; announcing the same members again keeps that
lease alive instead of granting another), so etcd deletes a member whose process stops
announcing; ``members`` reads the prefix. The ``expires_at`` a member carries is the
announcer's clock before the request plus the ttl: etcd has no clock to read, and its own
expiry comes no sooner (the TTL is rounded up to whole seconds).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from atp.core.errors import BackendUnavailable, InvalidInput
from atp.core.ports import Clock, Coordinator, Lease, Member, Registry
from atp.core.registry import check_announce, check_names, decode_members, encode_member, expiring
from atp.plugins.etcd._cluster import Cluster, Entry
from atp.plugins.etcd._url import EtcdTarget

__all__ = ["EtcdCoordinator"]

log = logging.getLogger("atp.plugins.etcd")
_T = TypeVar("_T")
_ATTEMPTS = 3
"""Rounds of read-then-transaction before acquire gives up on a name that keeps changing."""
_TXN_OPS = 128
"""etcd's default ``--max-txn-ops``: a larger announce or withdraw takes several transactions."""


@dataclass(frozen=True, slots=True)
class _Held:
    """A lease this coordinator took: its etcd lease id and that lease's TTL in seconds."""

    owner: str
    token: int
    lease_id: int
    seconds: int


class EtcdCoordinator:
    """Named leases with fencing tokens on an etcd cluster (etcd 3.4 or later).

    Tokens are etcd revisions: strictly greater after every change of holder, the same
    while one owner renews or re-acquires. Expiry is decided by the etcd cluster, in
    whole seconds (at least etcd's minimum TTL, 2 s by default).
    """

    def __init__(self, target: EtcdTarget, clock: Clock) -> None:
        self._target = target
        self._cluster = Cluster(target)
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._announced: tuple[frozenset[str], int, int] | None = None
        """The last announce's member names, TTL in seconds and etcd lease."""

    @property
    def target(self) -> EtcdTarget:
        return self._target

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` if it is free or already ``owner``'s; None if another owner holds it."""
        _check(name=name, owner=owner, ttl=ttl)
        key = self._key(name)
        for _ in range(_ATTEMPTS):
            entry = await self._cluster.get(key)
            if entry is not None and entry.value != owner.encode():
                return None
            started = self._clock.now()
            lease_id = await self._cluster.grant(_seconds(ttl))
            token = await self._claim(key, owner, entry, lease_id)
            if token is not None:
                return await self._keep(name, owner, token, lease_id, ttl, started, entry)
            await self._cluster.revoke(lease_id)
        return None

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend ``lease`` by ``ttl`` from now if its owner still holds it; else None."""
        _check(name=lease.name, owner=lease.owner, ttl=ttl)
        started = self._clock.now()
        held = self._held.get(lease.name)
        if held is not None and _mine(held, lease) and held.seconds == _seconds(ttl):
            if await self._cluster.keep_alive(held.lease_id) > 0:
                return Lease(lease.name, lease.owner, lease.token, started + ttl)
            self._held.pop(lease.name, None)
            return None
        key = self._key(lease.name)
        entry = await self._cluster.get(key)
        if not _owns(entry, lease.owner, lease.token):
            return None
        lease_id = await self._cluster.grant(_seconds(ttl))
        if await self._claim(key, lease.owner, entry, lease_id) is None:
            await self._cluster.revoke(lease_id)
            return None
        return await self._keep(lease.name, lease.owner, lease.token, lease_id, ttl, started, entry)

    async def release(self, lease: Lease) -> None:
        """Free ``lease`` at once if it is still ours (same owner and token); else do nothing."""
        held = self._held.get(lease.name)
        if held is not None and _mine(held, lease):
            del self._held[lease.name]
            await self._cluster.revoke(held.lease_id)
            return
        entry = await self._cluster.get(self._key(lease.name))
        if entry is not None and _owns(entry, lease.owner, lease.token):
            # Revoking deletes the key with it; a key that changed lease meanwhile is safe.
            await self._cluster.revoke(entry.lease)

    async def holder(self, name: str) -> Lease | None:
        """Return the lease on ``name`` while etcd keeps it, or None.

        ``expires_at`` is rounded down to the second: etcd reports whole seconds left, 0
        for the last one, and deletes the key once the lease ran out (within 0.5 s).
        """
        entry = await self._cluster.get(self._key(name))
        if entry is None:
            return None
        left = await self._cluster.time_to_live(entry.lease)
        if left < 0:  # the lease is gone: the key goes with it
            return None
        owner = entry.value.decode(errors="replace")
        return Lease(name, owner, entry.create_revision, self._clock.now() + left)

    async def announce(self, members: Sequence[Member], *, ttl: float) -> None:
        """Put the members on one etcd lease of ``ttl`` (rounded up to seconds): two
        requests (a grant or keep-alive, one transaction), plus one per further 128."""
        check_announce(members, ttl)
        if not members:
            return
        started = self._clock.now()
        lease_id = await self._lease_for(frozenset(m.name for m in members), _seconds(ttl))
        items = [(self._member(m.name), encode_member(expiring(m, started + ttl))) for m in members]
        for chunk in _chunks(items):
            await self._cluster.put_all(chunk, lease_id)

    async def withdraw(self, names: Sequence[str]) -> None:
        """Delete the members' keys, one transaction per 128 names; unknown names are ignored."""
        check_names(names)
        for chunk in _chunks([self._member(name) for name in names]):
            await self._cluster.delete_all(chunk)

    async def members(self, role: str | None = None) -> list[Member]:
        """The members etcd still keeps (of ``role``, if given), sorted by name: one range."""
        entries = await self._cluster.get_prefix(self._member(""))
        return decode_members(((entry.value, None) for entry in entries), role)

    async def _lease_for(self, names: frozenset[str], seconds: int) -> int:
        """The etcd lease for one announce: the previous announce's, kept alive, when it
        named the same members with the same TTL (a worker's heartbeat); else a new one.
        Only those members can be on that lease, so keeping it alive extends no one else."""
        last = self._announced
        same = last is not None and last[:2] == (names, seconds)
        if last is not None and same and await self._cluster.keep_alive(last[2]) > 0:
            return last[2]
        lease_id = await self._cluster.grant(seconds)
        self._announced = (names, seconds, lease_id)
        return lease_id

    async def close(self) -> None:
        """Close the connections; leases held run out on etcd's clock."""
        self._held.clear()
        await self._cluster.close()

    async def _claim(
        self, key: bytes, owner: str, entry: Entry | None, lease_id: int
    ) -> int | None:
        """Create the key, or move our existing key, onto ``lease_id``; return the token."""
        if entry is None:
            return await self._cluster.create(key, owner.encode(), lease_id)
        moved = await self._cluster.move(key, owner.encode(), entry.create_revision, lease_id)
        return entry.create_revision if moved else None

    async def _keep(
        self,
        name: str,
        owner: str,
        token: int,
        lease_id: int,
        ttl: float,
        started: float,
        previous: Entry | None,
    ) -> Lease:
        """Remember the lease taken; end the etcd lease the key has just left."""
        self._held[name] = _Held(owner, token, lease_id, _seconds(ttl))
        if previous is not None and previous.lease not in (0, lease_id):
            try:
                await self._cluster.revoke(previous.lease)
            except BackendUnavailable as exc:  # the lease is ours already: let the old one run out
                log.debug("etcd lease %x not revoked, it runs out: %s", previous.lease, exc)
        return Lease(name, owner, token, started + ttl)

    def _key(self, name: str) -> bytes:
        return f"{self._target.prefix}/leases/{name}".encode()

    def _member(self, name: str) -> bytes:
        return f"{self._target.prefix}/members/{name}".encode()


def _mine(held: _Held, lease: Lease) -> bool:
    return (held.owner, held.token) == (lease.owner, lease.token)


def _owns(entry: Entry | None, owner: str, token: int) -> bool:
    return entry is not None and (entry.value, entry.create_revision) == (owner.encode(), token)


def _chunks(items: list[_T]) -> list[list[_T]]:
    return [items[i : i + _TXN_OPS] for i in range(0, len(items), _TXN_OPS)]


def _seconds(ttl: float) -> int:
    """etcd leases count whole seconds: round up, so a lease never ends before its ttl."""
    return max(1, math.ceil(ttl))


def _check(*, name: str, owner: str, ttl: float) -> None:
    if not name or not isinstance(name, str):
        raise InvalidInput(f"a lease name must be a non-empty string, got {name!r}")
    if not owner or not isinstance(owner, str):
        raise InvalidInput(f"a lease owner must be a non-empty string, got {owner!r}")
    if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
        raise InvalidInput(f"a lease's ttl must be a number of seconds > 0, got {ttl!r}")


_: type[Coordinator] = EtcdCoordinator
_REGISTRY: type[Registry] = EtcdCoordinator
