"""The SQLite file format of atp: the store's tables and the local coordinator's leases.

One file may hold both, so one schema and one ``PRAGMA user_version`` cover them. Every
statement is idempotent, so a file of an older version is migrated by running them all:
version 2 added the ``schedules`` table (cron) to the tables of version 1, version 3 the
``workflow_definitions`` and ``workflow_runs`` tables. Version 4 scoped idempotency keys by
subject (ADR 0028): ``idempotency_keys`` replaces version 1's ``idempotency`` table, whose
rows move across with their task's subject. Version 5 added the ``flow_*`` tables of the
flow ledger (ADR 0038): limits, pauses, slots, buckets, windows and waiter lists. Version
6 gave waiters a fair group and a rank, and added the lists' times and the groups' passes
of the wake order (ADR 0039); a version 5 file's waiters get the group "" and rank 0 (so
they keep their order, lowest id first). Version 7 added the local coordinator's
``members`` table, the fleet's registry (ADR 0041), and ``flow_breakers``, the circuit
breakers (ADR 0040). Version 8 added ``task_counts``, the tasks per (subject, state), and
``task_activity``, the attempts that ended per minute (``atp.core.ports.Activity``), both
kept by triggers on ``tasks``; a version 7 file's counts are taken from its rows once, in
the transaction that creates the triggers, so none is missed.
"""

from __future__ import annotations

import sqlite3

from atp.core.errors import ConfigError
from atp.core.ports import ACTIVITY_BUCKET

__all__ = ["VERSION", "ensure_schema"]

VERSION = 8

_BUCKET = f"CAST(NEW.updated_at / {ACTIVITY_BUCKET:g} AS INTEGER) * {ACTIVITY_BUCKET:g}"
"""The start of the activity bucket of a write's time (times are positive: CAST floors)."""
_COUNT_NEW = """INSERT INTO task_counts (subject, state, n) VALUES (NEW.subject, NEW.state, 1)
        ON CONFLICT (subject, state) DO UPDATE SET n = n + 1;"""
_UNCOUNT_OLD = "UPDATE task_counts SET n = n - 1 WHERE subject = OLD.subject AND state = OLD.state;"

_DDL = (
    """CREATE TABLE IF NOT EXISTS tasks (
        id               TEXT PRIMARY KEY,
        subject          TEXT NOT NULL,
        state            TEXT NOT NULL,
        run_at           REAL NOT NULL,
        priority         INTEGER NOT NULL,
        attempt          INTEGER NOT NULL,
        max_attempts     INTEGER,
        lease_owner      TEXT,
        lease_until      REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL,
        finished_at      REAL,
        envelope         TEXT NOT NULL,
        result           TEXT,
        errors           TEXT NOT NULL DEFAULT '[]'
    )""",
    # Partial indexes hold only the rows their query looks for, so a transition updates
    # few of them; the queries pin them with INDEXED BY, since without statistics the
    # planner would prefer tasks_state and sort. lease_until is NULL outside READY/RUNNING.
    """CREATE INDEX IF NOT EXISTS tasks_due ON tasks (run_at, priority DESC, id)
        WHERE state = 'SCHEDULED'""",
    """CREATE INDEX IF NOT EXISTS tasks_lease ON tasks (state, lease_until, id)
        WHERE lease_until IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished_at)
        WHERE state IN ('SUCCEEDED', 'CANCELLED')""",
    "CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, id)",
    "CREATE INDEX IF NOT EXISTS tasks_subject_state ON tasks (subject, state)",
    # subject and id never change: this index costs a write only on insert and delete.
    "CREATE INDEX IF NOT EXISTS tasks_subject ON tasks (subject, id)",
    # Version 4: a key is unique per subject. run_at answers a duplicate publish even
    # after the task itself was pruned.
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        subject    TEXT NOT NULL,
        key        TEXT NOT NULL,
        task_id    TEXT NOT NULL,
        run_at     REAL NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (subject, key)
    )""",
    "CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at)",
    """CREATE TABLE IF NOT EXISTS fences (
        name  TEXT PRIMARY KEY,
        token INTEGER NOT NULL
    )""",
    # A released lease keeps its row (owner NULL) so its token keeps growing.
    """CREATE TABLE IF NOT EXISTS leases (
        name       TEXT PRIMARY KEY,
        owner      TEXT,
        token      INTEGER NOT NULL,
        expires_at REAL NOT NULL
    )""",
    # Version 7: the registry. ``body`` is the member as JSON (``atp.core.registry``).
    """CREATE TABLE IF NOT EXISTS members (
        name       TEXT PRIMARY KEY,
        role       TEXT NOT NULL,
        expires_at REAL NOT NULL,
        body       TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS members_expiry ON members (expires_at)",
    # Version 2: cron schedules. ``body`` is the whole schedule as JSON; the columns beside
    # it are the ones the scheduler searches and compares on.
    """CREATE TABLE IF NOT EXISTS schedules (
        name      TEXT PRIMARY KEY,
        paused    INTEGER NOT NULL,
        next_tick REAL NOT NULL,
        revision  INTEGER NOT NULL,
        body      TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_tick, name) WHERE paused = 0",
    # Version 3: workflows. A definition version never changes; a run's ``body`` is the
    # whole run as JSON, beside the columns the sweep searches and compares on.
    """CREATE TABLE IF NOT EXISTS workflow_definitions (
        name       TEXT NOT NULL,
        version    INTEGER NOT NULL,
        created_at REAL NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE IF NOT EXISTS workflow_runs (
        id       TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        state    TEXT NOT NULL,
        wake_at  REAL,
        revision INTEGER NOT NULL,
        body     TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS workflow_runs_wake ON workflow_runs (wake_at, id)
        WHERE state IN ('RUNNING', 'COMPENSATING') AND wake_at IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS workflow_runs_workflow ON workflow_runs (workflow, id)",
    # Version 5: the flow ledger. ``flow_meta`` holds one row, the rules' version.
    "CREATE TABLE IF NOT EXISTS flow_limits (name TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS flow_pauses (pattern TEXT PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS flow_meta (
        id      INTEGER PRIMARY KEY CHECK (id = 0),
        version INTEGER NOT NULL
    )""",
    # A holder whose ``until`` has passed no longer counts; admit and the sweep delete it.
    """CREATE TABLE IF NOT EXISTS flow_slots (
        slot    TEXT NOT NULL,
        task_id TEXT NOT NULL,
        until   REAL NOT NULL,
        PRIMARY KEY (slot, task_id)
    ) WITHOUT ROWID""",
    # A slot's limit row goes once the slot has neither holders nor waiters.
    "CREATE TABLE IF NOT EXISTS flow_slot_limits (slot TEXT PRIMARY KEY, lim INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS flow_buckets (
        name  TEXT PRIMARY KEY,
        tat   REAL NOT NULL,
        queue REAL NOT NULL
    )""",
    # A window's ``period`` is the latest admit's: the sweep deletes an idle window by it.
    """CREATE TABLE IF NOT EXISTS flow_windows (
        name   TEXT PRIMARY KEY,
        queue  REAL NOT NULL,
        period REAL NOT NULL
    )""",
    # One row per admission in a window's period; a rowid table, as two may share a time.
    """CREATE TABLE IF NOT EXISTS flow_window_times (
        name TEXT NOT NULL,
        t    REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS flow_window_times_name ON flow_window_times (name, t)",
    # Version 6 added ``grp`` and ``rank`` (``_WAITER_COLUMNS`` adds them to a version 5
    # table): within a group, the lowest rank comes out first, then the lowest task id.
    """CREATE TABLE IF NOT EXISTS flow_waiters (
        list    TEXT NOT NULL,
        task_id TEXT NOT NULL,
        grp     TEXT NOT NULL DEFAULT '',
        rank    REAL NOT NULL DEFAULT 0.0,
        PRIMARY KEY (list, task_id)
    ) WITHOUT ROWID""",
    # Version 6: the wake order's stride state. A list's ``time`` is the pass of the group
    # last served; a group's row lives while it has waiters, a list's while it has any.
    "CREATE TABLE IF NOT EXISTS flow_lists (list TEXT PRIMARY KEY, time REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS flow_groups (
        list   TEXT NOT NULL,
        grp    TEXT NOT NULL,
        pass   REAL NOT NULL,
        weight INTEGER NOT NULL,
        PRIMARY KEY (list, grp)
    ) WITHOUT ROWID""",
    # Version 7: circuit breakers. ``state`` is the whole BreakerState as JSON; ``rest_at``
    # is when a closed one comes to rest (NULL while open or half-open): writes delete
    # the rows whose time has come, found through the partial index.
    """CREATE TABLE IF NOT EXISTS flow_breakers (
        key     TEXT PRIMARY KEY,
        state   TEXT NOT NULL,
        rest_at REAL
    )""",
    """CREATE INDEX IF NOT EXISTS flow_breakers_rest ON flow_breakers (rest_at)
        WHERE rest_at IS NOT NULL""",
    # Version 8: counters the triggers below keep in the writer's transaction, so counts
    # and the console's charts are read without a scan. A count row that reached 0
    # stays until prune deletes it: the next task of the pair needs no insert.
    """CREATE TABLE IF NOT EXISTS task_counts (
        subject TEXT NOT NULL,
        state   TEXT NOT NULL,
        n       INTEGER NOT NULL,
        PRIMARY KEY (subject, state)
    ) WITHOUT ROWID""",
    # ``at`` first: prune deletes the old buckets by range, activity reads from a time.
    """CREATE TABLE IF NOT EXISTS task_activity (
        at      REAL NOT NULL,
        subject TEXT NOT NULL,
        state   TEXT NOT NULL,
        n       INTEGER NOT NULL,
        PRIMARY KEY (at, subject, state)
    ) WITHOUT ROWID""",
    f"""CREATE TRIGGER IF NOT EXISTS tasks_counted_in AFTER INSERT ON tasks BEGIN
        {_COUNT_NEW}
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS tasks_counted_out AFTER DELETE ON tasks BEGIN
        {_UNCOUNT_OLD}
    END""",
    # UPDATE OF fires whenever the columns are SET, changed or not: WHEN keeps the
    # heartbeat-like updates (state = state) free.
    f"""CREATE TRIGGER IF NOT EXISTS tasks_counted_moved AFTER UPDATE OF subject, state ON tasks
        WHEN OLD.state IS NOT NEW.state OR OLD.subject IS NOT NEW.subject BEGIN
        {_UNCOUNT_OLD}
        {_COUNT_NEW}
    END""",
    # An attempt ended: into a final state, or from RUNNING back to SCHEDULED (a retry),
    # counted in the minute of the write's updated_at, which every transition sets.
    f"""CREATE TRIGGER IF NOT EXISTS tasks_ended AFTER UPDATE OF state ON tasks
        WHEN OLD.state IS NOT NEW.state AND (NEW.state IN ('SUCCEEDED', 'DEAD', 'CANCELLED')
            OR (NEW.state = 'SCHEDULED' AND OLD.state = 'RUNNING')) BEGIN
        INSERT INTO task_activity (at, subject, state, n)
            VALUES ({_BUCKET}, NEW.subject, NEW.state, 1)
            ON CONFLICT (at, subject, state) DO UPDATE SET n = n + 1;
    END""",
)

_WAITER_COLUMNS = (
    ("grp", "TEXT NOT NULL DEFAULT ''"),
    ("rank", "REAL NOT NULL DEFAULT 0.0"),
)
"""The columns version 6 added to ``flow_waiters``, added where a version 5 file lacks them."""

_AFTER_COLUMNS = (
    """CREATE INDEX IF NOT EXISTS flow_waiters_order
        ON flow_waiters (list, grp, rank, task_id)""",
    # A version 5 file's waiters: each list's groups (all "") start at pass 0, weight 1.
    """INSERT OR IGNORE INTO flow_groups (list, grp, pass, weight)
        SELECT DISTINCT list, grp, 0.0, 1 FROM flow_waiters""",
)
"""Run once ``flow_waiters`` has every column: the index of the order within a group."""

_SCOPE_KEYS = (
    # A key whose task is gone has no subject to be scoped by: it is dropped (ADR 0028).
    """INSERT OR IGNORE INTO idempotency_keys
        (subject, key, task_id, run_at, created_at, expires_at)
        SELECT t.subject, i.key, i.task_id, t.run_at, i.created_at, i.expires_at
        FROM idempotency AS i JOIN tasks AS t ON t.id = i.task_id""",
    "DROP TABLE idempotency",
)
"""Version 4's migration of version 1's global keys, run when that table exists."""

_TAKE_COUNTS = (
    "DELETE FROM task_counts",
    """INSERT INTO task_counts (subject, state, n)
        SELECT subject, state, COUNT(*) FROM tasks GROUP BY subject, state""",
)
"""Version 8's first counts, from the rows as they stand; the triggers keep them after."""


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the tables if they are missing; refuse a file written by a newer atp."""
    if _version(conn, path) == VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _version(conn, path) < VERSION:
            for statement in _DDL:
                conn.execute(statement)
            _add_columns(conn, "flow_waiters", _WAITER_COLUMNS)
            for statement in _AFTER_COLUMNS:
                conn.execute(statement)
            if _has_table(conn, "idempotency"):
                for statement in _SCOPE_KEYS:
                    conn.execute(statement)
            for statement in _TAKE_COUNTS:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_columns(
    conn: sqlite3.Connection, table: str, columns: tuple[tuple[str, str], ...]
) -> None:
    """Add the columns ``table`` lacks (ALTER TABLE has no IF NOT EXISTS)."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, decl in columns:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return conn.execute(sql, (name,)).fetchone() is not None


def _version(conn: sqlite3.Connection, path: str) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > VERSION:
        raise ConfigError(
            f"SQLite database {path!r} has schema version {version}, written by a newer atp; "
            f"this atp reads version {VERSION}: upgrade atp"
        )
    return version
