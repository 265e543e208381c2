"""A token-bucket Limiter in a SQLite file: the limits hold across every process on the host.

Each ``acquire`` is one ``BEGIN IMMEDIATE`` transaction (read the bucket, refill, take,
write back), so two server processes sharing the file never both spend the last token.
The table lives beside the task store's tables when both use the same file.
"""

from __future__ import annotations

import sqlite3

from atp.core.plugins import hookimpl
from atp.core.ports import Clock, Limiter
from atp.core.settings import Settings
from atp.plugins.memory.limiter import check_limit, refill
from atp.plugins.sqlite._db import Database
from atp.plugins.sqlite._url import parse_url

__all__ = ["SqliteLimiter", "atp_make_limiter"]

SCHEME = "sqlite"
_TABLE = """CREATE TABLE IF NOT EXISTS atp_rate_buckets (
    key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL)"""


class SqliteLimiter:
    """Token buckets in table ``atp_rate_buckets`` of one SQLite file."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._ready = False

    @classmethod
    def from_url(cls, url: str, clock: Clock) -> SqliteLimiter:
        """Build a limiter for a ``sqlite://`` URL; the file is opened on first use."""
        return cls(Database(parse_url(url, SCHEME), thread_name="atp-sqlite-limiter"), clock)

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> float:
        check_limit(rate, burst, cost)  # before the transaction: a refusal writes nothing
        now = self._clock.now()

        def take(conn: sqlite3.Connection) -> float:
            if not self._ready:
                conn.execute(_TABLE)
            row = conn.execute(
                "SELECT tokens, updated FROM atp_rate_buckets WHERE key = ?", (key,)
            ).fetchone()
            tokens, updated = (float(burst), now) if row is None else (row[0], row[1])
            left, wait = refill(tokens, updated, now, rate=rate, burst=burst, cost=cost)
            conn.execute(
                "INSERT INTO atp_rate_buckets (key, tokens, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, "
                "updated = excluded.updated",
                (key, left, max(now, updated)),
            )
            self._ready = True  # only now: a rolled-back transaction takes its table along
            return wait

        return await self._db.write(take)

    async def close(self) -> None:
        await self._db.close()


_: type[Limiter] = SqliteLimiter


@hookimpl
def atp_make_limiter(url: str, settings: Settings, clock: Clock) -> Limiter | None:
    """A SqliteLimiter for a ``sqlite://`` URL; None for any other scheme. No I/O."""
    if url.partition(":")[0].lower() != SCHEME:
        return None
    return SqliteLimiter.from_url(url, clock)
