"""What is specific to the SQLite store: URLs, the file, other processes, windows, fences.

The port's generic behaviour is proven by the conformance suite; these tests cover what
only a durable, shared file can get wrong.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sqlite3
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from atp.core.clock import ManualClock
from atp.core.errors import BackendUnavailable, ConfigError, FencedOut, InvalidInput
from atp.core.ids import new_id
from atp.core.model import AttemptError, State, Task, TaskRecord
from atp.core.plugins import make_plugin_manager
from atp.core.ports import Claim, Created, Fence, Outcome, Requeue, TaskQuery, TaskStore
from atp.core.settings import Settings
from atp.plugins import sqlite as sqlite_plugin
from atp.plugins.sqlite import SqliteStore
from atp.plugins.sqlite._schema import VERSION
from atp.plugins.sqlite._url import parse_url

NOW = 1_750_000_000.0


def make_tasks(
    count: int, *, subject: str = "orders.close", run_at: float = NOW, **fields: Any
) -> list[Task]:
    return [
        Task(
            id=new_id(NOW),
            subject=subject,
            payload={"n": n},
            run_at=run_at,
            created_at=NOW,
            **fields,
        )
        for n in range(count)
    ]


async def records(store: SqliteStore, ids: Sequence[str]) -> list[TaskRecord]:
    """Return the records of ``ids``, every one of which must exist."""
    found = await store.get(ids)
    assert None not in found
    return [record for record in found if record is not None]


def claimed_ids(claims: Sequence[Claim]) -> list[str]:
    return [claim.record.id for claim in claims if claim.claimed and claim.record]


def file_url(path: Path, options: str = "") -> str:
    return f"sqlite:///{path}{options}"  # an absolute path: four slashes in all


@pytest.fixture
async def store(tmp_path):
    opened = SqliteStore.from_url(file_url(tmp_path / "atp.db"))
    yield opened
    await opened.close()


# -- URLs and the plugin hook ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "synchronous", "busy_timeout"),
    [
        ("sqlite:///data/atp.db", os.path.abspath("data/atp.db"), "full", 5000),
        ("sqlite:////var/lib/atp.db", "/var/lib/atp.db", "full", 5000),
        ("sqlite://:memory:", ":memory:", "full", 5000),
        ("sqlite:///:memory:", ":memory:", "full", 5000),
        ("sqlite:////tmp/a%20b.db?synchronous=NORMAL", "/tmp/a b.db", "normal", 5000),
        ("sqlite:////tmp/x.db?busy_timeout=250&synchronous=full", "/tmp/x.db", "full", 250),
    ],
)
def test_urls_follow_sqlalchemy(url, path, synchronous, busy_timeout):
    target = parse_url(url, "sqlite")
    assert (target.path, target.synchronous, target.busy_timeout) == (
        path,
        synchronous,
        busy_timeout,
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqlite://", "no database path"),
        ("sqlite:///", "must name a file"),
        ("sqlite:///dir/", "must name a file"),
        ("sqlite://host/atp.db", "no database path"),
        ("sqlite:atp.db", "must start with 'sqlite://'"),
        ("sqlite:///atp.db?synchronus=full", "did you mean 'synchronous'"),
        ("sqlite:///atp.db?journal=wal", "known: busy_timeout, mode, synchronous"),
        ("sqlite:///atp.db?mode=rwc", "mode must be 'ro' or 'rw'"),
        ("sqlite:///atp.db?synchronous=off", "'full' or 'normal'"),
        ("sqlite:///atp.db?busy_timeout=-1", "whole number of milliseconds"),
        ("sqlite:///atp.db?busy_timeout=1&busy_timeout=2", "given twice"),
        ("sqlite:///atp.db?busy_timeout", "malformed query"),
        ("sqlite:///atp.db#frag", "fragment"),
    ],
)
def test_malformed_urls_are_refused_naming_the_url(url, complaint):
    with pytest.raises(InvalidInput) as caught:
        sqlite_plugin.atp_make_store(url=url, settings=Settings(), clock=ManualClock())
    assert url in str(caught.value)
    assert complaint in str(caught.value)


def test_the_hook_serves_only_sqlite_urls_and_does_no_io(tmp_path):
    settings, clock = Settings(), ManualClock()
    assert sqlite_plugin.atp_make_store(url="redis://x", settings=settings, clock=clock) is None
    assert sqlite_plugin.atp_make_store(url="sqlitex:///a", settings=settings, clock=clock) is None
    built = sqlite_plugin.atp_make_store(
        url=file_url(tmp_path / "a.db"), settings=settings, clock=clock
    )
    assert isinstance(built, SqliteStore)
    assert isinstance(built, TaskStore)
    assert not (tmp_path / "a.db").exists()
    assert sqlite_plugin.atp_url_schemes() == {"store": ["sqlite"]}


async def test_the_plugin_manager_builds_it(tmp_path):
    url = file_url(tmp_path / "pm.db")
    manager = make_plugin_manager(Settings(store=url), entry_points=False)
    built = manager.make_store(url, Settings(store=url), ManualClock())
    assert isinstance(built, SqliteStore)
    assert "sqlite" in manager.schemes("store")
    await built.close()


# -- the file ---------------------------------------------------------------------------------


async def test_a_missing_directory_is_a_config_error_naming_it(tmp_path):
    missing = tmp_path / "nope" / "atp.db"
    store = SqliteStore.from_url(file_url(missing))
    with pytest.raises(ConfigError, match=str(missing.parent)):
        await store.get(["x"])
    assert not missing.parent.exists()
    await store.close()


async def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    store = SqliteStore.from_url(file_url(junk))
    with pytest.raises(ConfigError, match=r"junk\.db"):
        await store.get(["x"])
    await store.close()


async def test_a_file_from_a_newer_atp_is_refused(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    store = SqliteStore.from_url(file_url(path))
    with pytest.raises(ConfigError, match="schema version 99"):
        await store.counts()
    await store.close()


async def test_the_file_is_in_wal_mode_with_the_schema_version(store, tmp_path):
    await store.counts()
    with sqlite3.connect(tmp_path / "atp.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION


async def test_data_survives_close_and_reopen(tmp_path):
    url = file_url(tmp_path / "atp.db")
    first = SqliteStore.from_url(url)
    tasks = make_tasks(3, idempotency_key=None)
    await first.create(tasks, now=NOW, idempotency_window=60, ready_until=NOW + 30)
    await first.claim([tasks[0].id], owner="w1", now=NOW, lease_until=NOW + 30)
    error = AttemptError(attempt=1, at=NOW + 1, message="boom", kind="error")
    outcome = Outcome(tasks[0].id, "w1", State.SCHEDULED, at=NOW + 1, error=error, run_at=NOW + 9)
    assert await first.finish([outcome]) == [True]
    before = await records(first, [t.id for t in tasks])
    await first.close()

    second = SqliteStore.from_url(url)
    after = await records(second, [t.id for t in tasks])
    assert after == before
    assert after[0].errors == (error,)
    assert after[0].task.run_at == NOW + 9
    assert after[0].task.attempt == 1
    await second.close()


async def test_a_closed_store_refuses_calls(store):
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(BackendUnavailable, match="closed"):
        await store.get(["x"])


def _use_after_fork(store: SqliteStore) -> None:
    try:
        asyncio.run(store.counts())
    except BackendUnavailable as exc:
        asyncio.run(store.close())  # returns at once: nothing of the parent's to close
        sys.exit(0 if "opened by process" in str(exc) else 2)
    sys.exit(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
async def test_a_forked_child_is_told_to_open_its_own_store(store):
    await store.counts()  # the connection and its thread exist in the parent only
    child = multiprocessing.get_context("fork").Process(target=_use_after_fork, args=(store,))
    child.start()
    await asyncio.to_thread(child.join, 30)
    assert child.exitcode == 0
    assert await store.counts() == {}


async def test_memory_url_keeps_one_private_database():
    store = SqliteStore.from_url("sqlite://:memory:")
    tasks = make_tasks(2)
    await store.create(tasks, now=NOW, idempotency_window=60)
    assert [r.state for r in await records(store, [t.id for t in tasks])] == [State.SCHEDULED] * 2
    await store.close()


async def test_a_lock_held_past_the_busy_timeout_is_backend_unavailable(tmp_path):
    path = tmp_path / "atp.db"
    store = SqliteStore.from_url(file_url(path, "?busy_timeout=50"))
    await store.counts()  # creates the file and its schema
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendUnavailable, match="locked"):
            await store.create(make_tasks(1), now=NOW, idempotency_window=60)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await store.create(make_tasks(1), now=NOW, idempotency_window=60))[0].created
    await store.close()


# -- many writers on one file ---------------------------------------------------------------


async def _drain(store: SqliteStore, owner: str) -> list[str]:
    """Take due tasks and claim them until none are left; return the ids claimed."""
    claimed: list[str] = []
    while tasks := await store.take_due(now=NOW, limit=25, ready_until=NOW + 30):
        claims = await store.claim(
            [t.id for t in tasks], owner=owner, now=NOW, lease_until=NOW + 30
        )
        claimed.extend(claimed_ids(claims))
        await asyncio.sleep(0.001)  # let the other store in: SQLite's lock is not fair
    return claimed


async def test_two_stores_on_one_file_never_take_a_task_twice(tmp_path):
    url = file_url(tmp_path / "atp.db")
    one, two = SqliteStore.from_url(url), SqliteStore.from_url(url)
    tasks = make_tasks(1500)
    await one.create(tasks, now=NOW, idempotency_window=60)
    await two.counts()  # both open before the race, so neither starts late
    first, second = await asyncio.gather(_drain(one, "a"), _drain(two, "b"))
    assert first
    assert second
    assert sorted(first + second) == sorted(t.id for t in tasks)
    await one.close()
    await two.close()


_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from atp.plugins.sqlite import SqliteStore

    async def main(url, mode, now):
        store = SqliteStore.from_url(url)
        await store.counts()
        print("ready", flush=True)
        sys.stdin.readline()
        claimed = []
        if mode == "take":
            while tasks := await store.take_due(now=now, limit=25, ready_until=now + 30):
                claims = await store.claim([t.id for t in tasks], owner="child", now=now,
                                           lease_until=now + 30)
                claimed += [c.record.id for c in claims if c.claimed]
                await asyncio.sleep(0.001)  # let the parent in: SQLite's lock is not fair
        else:
            ids = json.loads(sys.stdin.readline())
            for start in range(0, len(ids), 20):
                claims = await store.claim(ids[start:start + 20], owner="child", now=now,
                                           lease_until=now + 30)
                claimed += [c.record.id for c in claims if c.claimed]
                await asyncio.sleep(0.001)
        await store.close()
        print(json.dumps(claimed), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    """
)


async def _spawn_child(url: str, mode: str) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        url,
        mode,
        str(NOW),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert await child.stdout.readline() == b"ready\n"
    return child


def _tell(child: asyncio.subprocess.Process, *lines: str) -> None:
    assert child.stdin is not None
    child.stdin.write("".join(line + "\n" for line in lines).encode())


async def _child_claims(child: asyncio.subprocess.Process) -> list[str]:
    output, _ = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0
    claimed: list[str] = json.loads(output.decode().strip().splitlines()[-1])
    return claimed


async def test_another_process_taking_due_tasks_never_doubles_or_loses_one(tmp_path):
    url = file_url(tmp_path / "atp.db")
    store = SqliteStore.from_url(url)
    tasks = make_tasks(2000)
    await store.create(tasks, now=NOW, idempotency_window=60)
    child = await _spawn_child(url, "take")
    _tell(child, "go")
    mine = await _drain(store, "parent")
    theirs = await _child_claims(child)
    assert sorted(mine + theirs) == sorted(t.id for t in tasks)
    found = await records(store, [t.id for t in tasks])
    assert {r.state for r in found} == {State.RUNNING}
    assert {r.task.attempt for r in found} == {1}
    await store.close()


async def test_another_process_claiming_the_same_ids_claims_each_once(tmp_path):
    url = file_url(tmp_path / "atp.db")
    store = SqliteStore.from_url(url)
    tasks = make_tasks(1000)
    await store.create(tasks, now=NOW, idempotency_window=60, ready_until=NOW + 30)
    ids = [t.id for t in tasks]
    child = await _spawn_child(url, "claim")
    _tell(child, "go", json.dumps(ids))
    mine: list[str] = []
    for start in range(0, len(ids), 20):
        claims = await store.claim(
            ids[start : start + 20], owner="parent", now=NOW, lease_until=NOW + 30
        )
        mine += claimed_ids(claims)
    theirs = await _child_claims(child)
    assert not set(mine) & set(theirs)
    assert sorted(mine + theirs) == sorted(ids)
    owners = {r.id: r.lease_owner for r in await records(store, ids)}
    assert all(owners[i] == "parent" for i in mine)
    assert all(owners[i] == "child" for i in theirs)
    await store.close()


# -- idempotency windows, fences --------------------------------------------------------------


async def test_an_idempotency_key_holds_for_its_window_then_is_replaced(store, tmp_path):
    clock = ManualClock(start=NOW)
    first = make_tasks(1, idempotency_key="order-42")[0]
    created = await store.create([first], now=clock.now(), idempotency_window=60)
    assert created[0].created

    await clock.advance(59)
    again = make_tasks(1, idempotency_key="order-42")[0]
    assert (await store.create([again], now=clock.now(), idempotency_window=60))[0].id == first.id
    assert (await store.get([again.id]))[0] is None

    await clock.advance(2)
    late = make_tasks(1, idempotency_key="order-42")[0]
    created = await store.create([late], now=clock.now(), idempotency_window=60)
    assert created == [Created(late.id, True, late.run_at)]
    repeat = await store.create(
        make_tasks(1, idempotency_key="order-42"), now=clock.now(), idempotency_window=60
    )
    assert repeat[0].id == late.id  # the new key now holds for its own window


async def test_prune_drops_closed_idempotency_keys(store, tmp_path):
    clock = ManualClock(start=NOW)
    await store.create(make_tasks(3, idempotency_key=None), now=clock.now(), idempotency_window=60)
    keyed = [Task(id=new_id(NOW), subject="a.b", idempotency_key=f"k{n}") for n in range(3)]
    await store.create(keyed, now=clock.now(), idempotency_window=60)
    await clock.advance(61)
    assert await store.prune(finished_before=clock.now(), now=clock.now(), limit=100) == 0
    with sqlite3.connect(tmp_path / "atp.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM idempotency_keys").fetchone()[0] == 0


async def test_the_first_task_with_a_key_in_a_batch_wins(store):
    batch = make_tasks(3, idempotency_key="same")
    created = await store.create(batch, now=NOW, idempotency_window=60)
    assert [c.created for c in created] == [True, False, False]
    assert {c.id for c in created} == {batch[0].id}


async def test_a_task_id_that_exists_is_not_written_twice(store):
    task = make_tasks(1)[0]
    await store.create([task], now=NOW, idempotency_window=60)
    changed = task.replace(payload="other")
    created = await store.create([changed, changed], now=NOW + 1, idempotency_window=60)
    assert created == [Created(task.id, False, task.run_at)] * 2
    assert (await store.get([task.id]))[0].task.payload == {"n": 0}


async def test_an_older_fence_is_refused_and_changes_nothing(tmp_path):
    url = file_url(tmp_path / "atp.db")
    leader, stale = SqliteStore.from_url(url), SqliteStore.from_url(url)
    tasks = make_tasks(4)
    await leader.create(tasks, now=NOW, idempotency_window=60)
    assert (
        len(await leader.take_due(now=NOW, limit=1, ready_until=NOW + 30, fence=Fence("sched", 2)))
        == 1
    )

    with pytest.raises(FencedOut, match="sched"):
        await stale.take_due(now=NOW, limit=10, ready_until=NOW + 30, fence=Fence("sched", 1))
    with pytest.raises(FencedOut):
        await stale.recover(now=NOW + 99, limit=10, default_max_attempts=3, fence=Fence("sched", 1))
    with pytest.raises(FencedOut):
        await stale.redispatch(
            now=NOW + 99, limit=10, ready_until=NOW + 200, fence=Fence("sched", 1)
        )
    found = await records(leader, [t.id for t in tasks])
    assert sorted((r.state, r.lease_until) for r in found) == [
        (State.READY, NOW + 30),
        (State.SCHEDULED, None),
        (State.SCHEDULED, None),
        (State.SCHEDULED, None),
    ]

    assert (
        len(await stale.take_due(now=NOW, limit=1, ready_until=NOW + 30, fence=Fence("sched", 2)))
        == 1
    )
    assert (
        len(await stale.take_due(now=NOW, limit=1, ready_until=NOW + 30, fence=Fence("sched", 3)))
        == 1
    )
    with pytest.raises(FencedOut):
        await leader.take_due(now=NOW, limit=1, ready_until=NOW + 30, fence=Fence("sched", 2))
    other = await leader.take_due(now=NOW, limit=1, ready_until=NOW + 30, fence=Fence("cron", 1))
    assert len(other) == 1  # fences of different names are independent
    await leader.close()
    await stale.close()


# -- batches and malformed input ------------------------------------------------------------


async def test_batches_larger_than_one_statement_chunk(store):
    tasks = make_tasks(1234)
    ids = [t.id for t in tasks]
    await store.create(tasks, now=NOW, idempotency_window=60, ready_until=NOW + 30)
    claims = await store.claim([*ids, ids[0]], owner="w", now=NOW, lease_until=NOW + 30)
    assert [c.claimed for c in claims] == [True] * 1234 + [False]
    assert len(await store.heartbeat(ids, owner="w", lease_until=NOW + 60)) == 1234
    cancelled = await store.cancel(ids, now=NOW + 1)
    assert all(r.cancel_requested for r in cancelled)
    assert await store.counts() == {("orders.close", State.RUNNING): 1234}


async def test_a_bad_task_in_a_batch_writes_nothing(store):
    good = make_tasks(2)
    bad = make_tasks(1)[0].replace(payload={"x": object()})
    with pytest.raises(InvalidInput):
        await store.create([*good, bad], now=NOW, idempotency_window=60)
    with pytest.raises(InvalidInput, match="subject"):
        await store.create(
            [*good, good[0].replace(id="x", subject="a..b")], now=NOW, idempotency_window=60
        )
    huge = make_tasks(1)[0].replace(priority=2**70)
    with pytest.raises(InvalidInput, match="64-bit"):
        await store.create([*good, huge], now=NOW, idempotency_window=60)
    assert await store.get([t.id for t in good]) == [None, None]


async def test_a_finish_to_a_non_final_state_is_refused_whole(store):
    tasks = make_tasks(2)
    await store.create(tasks, now=NOW, idempotency_window=60, ready_until=NOW + 30)
    await store.claim([t.id for t in tasks], owner="w", now=NOW, lease_until=NOW + 30)
    outcomes = [
        Outcome(tasks[0].id, "w", State.SUCCEEDED, at=NOW + 1),
        Outcome(tasks[1].id, "w", State.READY, at=NOW + 1),
    ]
    with pytest.raises(InvalidInput, match="READY"):
        await store.finish(outcomes)
    assert {r.state for r in await store.get([t.id for t in tasks])} == {State.RUNNING}


@pytest.mark.parametrize(
    "query",
    [TaskQuery(subject="orders..close"), TaskQuery(subject="a.>.b"), TaskQuery(limit=0)],
)
async def test_malformed_queries_are_invalid_input(store, query):
    with pytest.raises(InvalidInput):
        await store.query(query)


async def test_subject_patterns_page_exactly(store):
    subjects = ["orders.close", "orders.close.eu", "orders.open", "order.close", "sms.send"]
    for subject in subjects:
        await store.create(make_tasks(3, subject=subject), now=NOW, idempotency_window=60)

    async def listing(pattern: str) -> list[str]:
        seen, cursor = [], None
        while True:
            page = await store.query(TaskQuery(subject=pattern, cursor=cursor, limit=2))
            seen += [r.subject for r in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    assert sorted(set(await listing("orders.*"))) == ["orders.close", "orders.open"]
    assert sorted(set(await listing("orders.>"))) == [
        "orders.close",
        "orders.close.eu",
        "orders.open",
    ]
    assert sorted(set(await listing("*.close"))) == ["order.close", "orders.close"]
    assert len(await listing(">")) == 15
    assert len(await listing("orders.close")) == 3


async def test_requeue_with_a_new_payload_rewrites_the_envelope(store):
    task = make_tasks(1, max_attempts=1)[0]
    await store.create([task], now=NOW, idempotency_window=60, ready_until=NOW + 30)
    await store.claim([task.id], owner="w", now=NOW, lease_until=NOW + 30)
    dead = await store.recover(now=NOW + 31, limit=10, default_max_attempts=3)
    assert dead[0].state is State.DEAD
    assert dead[0].errors[-1].kind == "lease"
    request = Requeue(task.id, run_at=NOW + 50, payload=[1, None, "x"], replace_payload=True)
    [record] = await store.requeue([request], now=NOW + 40)
    assert record.state is State.SCHEDULED
    assert record.task.payload == [1, None, "x"]
    assert (record.task.attempt, record.task.run_at, record.finished_at) == (0, NOW + 50, None)
    assert len(record.errors) == 1
