"""The local Coordinator: leases and the fleet's registry in a SQLite file, shared by every
process on this machine.

A lease is a row of the ``leases`` table. A released or expired lease keeps its row, so
its fencing token keeps growing across holders for the life of the file. A member of the
registry is a row of the ``members`` table, its expiry beside its JSON; announce deletes
the expired rows, and reading skips them, so reads take no write lock. Each write is
one ``BEGIN IMMEDIATE`` transaction, atomic against every other process using the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial

from atp.core.errors import InvalidInput
from atp.core.ports import Clock, Coordinator, Lease, Member, Registry
from atp.core.registry import check_announce, check_names, decode_members
from atp.plugins.sqlite.files import Database, SqliteTarget

__all__ = ["LocalCoordinator"]

_SELECT = "SELECT owner, token, expires_at FROM leases WHERE name = ?"
_UPSERT = (
    "INSERT INTO leases (name, owner, token, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token, "
    "expires_at = excluded.expires_at"
)
_ANNOUNCE = (
    "INSERT INTO members (name, role, expires_at, body) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
    "expires_at = excluded.expires_at, body = excluded.body"
)
_MEMBERS = "SELECT body, expires_at FROM members WHERE expires_at > ? ORDER BY name"


class LocalCoordinator:
    """Named leases with fencing tokens in a SQLite file; times come from ``clock``.

    The token of a name grows by one each time the lease passes to another holder
    (including after a release or an expiry) and stays the same while one owner keeps
    re-acquiring or renewing it.
    """

    def __init__(self, target: SqliteTarget, clock: Clock) -> None:
        self._db = Database(target, thread_name="atp-local-coordinator")
        self._clock = clock

    @property
    def target(self) -> SqliteTarget:
        return self._db.target

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` if it is free, expired or already ``owner``'s, in one transaction."""
        _check(name=name, owner=owner, ttl=ttl)
        return await self._db.write(partial(_acquire, name, owner, ttl, self._clock.now()))

    async def renew(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend ``lease`` by ``ttl`` from now if it is still held, unexpired, by its owner."""
        _check(name=lease.name, owner=lease.owner, ttl=ttl)
        return await self._db.write(partial(_renew, lease, ttl, self._clock.now()))

    async def release(self, lease: Lease) -> None:
        """Free ``lease`` if it is still ours (same owner and token); else do nothing."""
        await self._db.write(partial(_release, lease, self._clock.now()))

    async def holder(self, name: str) -> Lease | None:
        """Return the unexpired lease on ``name``, or None."""
        return await self._db.read(partial(_holder, name, self._clock.now()))

    async def announce(self, members: Sequence[Member], *, ttl: float) -> None:
        """List each member, replacing its namesake, until ``ttl`` seconds from now, in one
        transaction that also forgets the members whose TTL has passed."""
        bodies = check_announce(members, ttl)
        if not members:
            return
        now = self._clock.now()
        pairs = zip(members, bodies, strict=True)
        rows = [(m.name, m.role, now + ttl, body.decode()) for m, body in pairs]
        await self._db.write(partial(_announce, rows, now))

    async def withdraw(self, names: Sequence[str]) -> None:
        """Remove members by name in one transaction; unknown names are ignored."""
        check_names(names)
        if names:
            await self._db.write(partial(_withdraw, list(names)))

    async def members(self, role: str | None = None) -> list[Member]:
        """The unexpired members (of ``role``, if given), sorted by name."""
        rows = await self._db.read(partial(_members, self._clock.now()))
        return decode_members(rows, role)

    async def close(self) -> None:
        """Close the file; leases held run out on their own."""
        await self._db.close()


def _acquire(
    name: str, owner: str, ttl: float, now: float, conn: sqlite3.Connection
) -> Lease | None:
    row = conn.execute(_SELECT, (name,)).fetchone()
    if row is None:
        token = 1
    else:
        held_by, token, expires_at = row
        if held_by != owner:
            if held_by is not None and expires_at > now:
                return None
            token += 1
    conn.execute(_UPSERT, (name, owner, token, now + ttl))
    return Lease(name, owner, token, now + ttl)


def _renew(lease: Lease, ttl: float, now: float, conn: sqlite3.Connection) -> Lease | None:
    row = conn.execute(_SELECT, (lease.name,)).fetchone()
    if row is None or row[0] != lease.owner or row[1] != lease.token or row[2] <= now:
        return None
    conn.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (now + ttl, lease.name))
    return Lease(lease.name, lease.owner, lease.token, now + ttl)


def _release(lease: Lease, now: float, conn: sqlite3.Connection) -> None:
    conn.execute(
        "UPDATE leases SET owner = NULL, expires_at = ? WHERE name = ? AND owner = ? AND token = ?",
        (now, lease.name, lease.owner, lease.token),
    )


def _holder(name: str, now: float, conn: sqlite3.Connection) -> Lease | None:
    row = conn.execute(_SELECT, (name,)).fetchone()
    if row is None or row[0] is None or row[2] <= now:
        return None
    return Lease(name, row[0], row[1], row[2])


_Row = tuple[str, str, float, str]
"""A member's row: name, role, expires_at and its JSON."""


def _announce(rows: list[_Row], now: float, conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM members WHERE expires_at <= ?", (now,))
    conn.executemany(_ANNOUNCE, rows)


def _withdraw(names: list[str], conn: sqlite3.Connection) -> None:
    conn.executemany("DELETE FROM members WHERE name = ?", [(name,) for name in names])


def _members(now: float, conn: sqlite3.Connection) -> list[tuple[str, float]]:
    return conn.execute(_MEMBERS, (now,)).fetchall()


def _check(*, name: str, owner: str, ttl: float) -> None:
    if not name or not isinstance(name, str):
        raise InvalidInput(f"a lease name must be a non-empty string, got {name!r}")
    if not owner or not isinstance(owner, str):
        raise InvalidInput(f"a lease owner must be a non-empty string, got {owner!r}")
    if not ttl > 0:
        raise InvalidInput(f"a lease's ttl must be greater than 0 seconds, got {ttl!r}")


_: type[Coordinator] = LocalCoordinator
_REGISTRY: type[Registry] = LocalCoordinator
