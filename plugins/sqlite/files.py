"""What other plugins build on to keep their own tables in a SQLite file: the URL
parser and the one-thread connection (the local coordinator shares the store's file)."""

from __future__ import annotations

from atp.plugins.sqlite._db import Database
from atp.plugins.sqlite._url import SqliteTarget, parse_url

__all__ = ["Database", "SqliteTarget", "parse_url"]
