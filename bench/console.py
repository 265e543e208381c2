"""The console's pages with a million tasks in the store, on SQLite and on Redis (issue 15).

Each backend is seeded through the store's own batched calls: ``create`` in batches of
``BATCH``, then ``claim`` and ``finish`` (or ``cancel``) for the tasks whose state is
not the one they are created in, so the counters and indexes are the ones real traffic
keeps. The tasks were created over the last ``SPAN`` seconds (their ids carry that time),
over ``len(SUBJECTS)`` subjects of uneven traffic, most SUCCEEDED, with SCHEDULED tasks
due later, READY, RUNNING, RETRYING (SCHEDULED after a failed attempt), DEAD with their
errors and CANCELLED ones (``MIX``). Seeding's rate is reported beside the raw backend's
(SQLite's batched writes, Redis's pipelined streams) measured in the same run.

Then a real ``atp server`` (uvicorn, authentication on, the console on) serves the store,
and one client signed in with a ``read`` token times ``REQUESTS`` GETs of each page and
live fragment after ``WARMUP`` untimed ones, one at a time (an ``admin`` one POSTs the
purge preview, which changes nothing): p50 and p99 in milliseconds, beside ``GET
/healthz`` on the same server (the HTTP floor). SQLite is a file in a temporary folder;
Redis a private ``redis-server`` on a free port, without persistence (never a shared
server: the keys take about a GB). Both are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import httpx

from atp.adapters._auth.tokens import new_token
from atp.core.cron.service import schedule_store
from atp.core.ids import new_id
from atp.core.model import AttemptError, State, Task
from atp.core.platform import Platform
from atp.core.ports import Outcome, TaskStore
from atp.core.schedules import Schedule
from atp.core.settings import Settings
from atp.core.workflows.definition import Definition, Step, StepKind
from atp.core.workflows.engine import workflow_store
from atp.core.workflows.runs import Run, RunState, StepRun, StepState
from bench import raw
from bench.measure import median
from chaos.servers import free_port, start_redis

__all__ = ["Call", "Facts", "Plan", "Server", "calls", "seed", "suite", "time_pages"]

TASKS = 1_000_000
"""Tasks in the store (``--store-size``)."""
BATCH = 5000
"""Tasks per store call while seeding."""
SPAN = 3 * 86400.0
"""Seconds over which the seeded tasks were created, ending now."""
REQUESTS = 100
"""Timed GETs per page and run."""
WARMUP = 5
"""Untimed GETs per page before those."""
WINDOW = 7 * 86400.0
"""The idempotency window of the seeded keys: every key still names its task."""
KEYED = 10
"""One task in this many carries an idempotency key."""
REPO = Path(__file__).resolve().parents[1]

SUBJECTS = tuple(
    f"{area}.{verb}"
    for area in ("orders", "emails", "images", "reports", "billing")
    for verb in ("created", "sent", "resized", "daily")
)
"""Twenty subjects; the first carries the most traffic (weights 1, 1/2, 1/3, ...)."""
MIX = {
    State.SUCCEEDED: 0.925,
    State.SCHEDULED: 0.03,
    State.DEAD: 0.02,
    "RETRYING": 0.01,
    State.READY: 0.01,
    State.CANCELLED: 0.004,
    State.RUNNING: 0.001,
}
"""The share of each state among the seeded tasks (RETRYING: SCHEDULED after a failure)."""
Fate = State | str
Figures = dict[str, dict[str, float]]


@dataclass
class Plan:
    """Which task gets which subject and fate, and when each was created (ascending)."""

    size: int
    now: float
    subjects: list[str] = field(default_factory=list)
    fates: list[Fate] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, size: int, now: float) -> Plan:
        """A plan of ``size`` tasks, the same mix every time (a fixed seed), new ids."""
        chance = random.Random(15)
        weights = [1 / (rank + 1) for rank in range(len(SUBJECTS))]
        plan = cls(size, now)
        plan.subjects = chance.choices(SUBJECTS, weights, k=size)
        plan.fates = chance.choices(list(MIX), list(MIX.values()), k=size)
        # new_id never goes back in time within a process: stamp the ids oldest first.
        plan.ids = [new_id(plan.created(n)) for n in range(size)]
        plan.runs = [new_id(now) for _ in range(RUNS)]
        return plan

    def created(self, n: int) -> float:
        return self.now - SPAN + SPAN * n / self.size

    def task(self, n: int) -> Task:
        at = self.created(n)
        later = self.fates[n] == State.SCHEDULED
        return Task(
            id=self.ids[n],
            subject=self.subjects[n],
            payload={"order": n, "customer": f"c-{n % 9973}", "lines": [1, 2, 3]},
            idempotency_key=f"key-{n}" if n % KEYED == 0 else None,
            run_at=self.now + 60 + n % 86400 if later else at,
            created_at=at,
        )

    def facts(self) -> Facts:
        """What the pages are asked about: real ids, keys, subjects of this plan."""
        middle = self.size // 2
        keyed = middle - middle % KEYED
        dead = next(n for n in range(middle, self.size) if self.fates[n] == State.DEAD)
        return Facts(
            task_id=self.ids[dead],
            cursor=self.ids[middle],
            subject=SUBJECTS[3],
            key_subject=self.subjects[keyed],
            key=f"key-{keyed}",
            since=self.now - 30 * 3600,
            until=self.now - 25 * 3600,
            run_id=self.runs[-1],
        )


@dataclass(frozen=True)
class Facts:
    """What the timed pages name: a DEAD task, a cursor halfway down the listing, a
    subject, a task's idempotency key and its subject, a time range (five hours, a day
    ago), a workflow run waiting on its signal."""

    task_id: str
    cursor: str
    subject: str
    key_subject: str
    key: str
    since: float
    until: float
    run_id: str


# -- seeding -------------------------------------------------------------------------------


async def seed(store: TaskStore, plan: Plan) -> float:
    """Write ``plan`` into ``store`` in batches; return tasks per second."""
    started = time.perf_counter()
    for first in range(0, plan.size, BATCH):
        await _seed_batch(store, plan, range(first, min(first + BATCH, plan.size)))
    return plan.size / (time.perf_counter() - started)


async def _seed_batch(store: TaskStore, plan: Plan, numbers: range) -> None:
    at = plan.created(numbers[-1])
    tasks = [plan.task(n) for n in numbers]
    await store.create(tasks, now=at, idempotency_window=WINDOW, ready_until=at + 300)
    by_fate: dict[Fate, list[str]] = {}
    for n in numbers:
        by_fate.setdefault(plan.fates[n], []).append(plan.ids[n])
    owner = f"worker-{numbers[0] // BATCH % 4}"
    ran = [(i, fate) for fate, ids in by_fate.items() if fate in _FINISHED for i in ids]
    await store.claim([i for i, _ in ran], owner=owner, now=at, lease_until=at + 30)
    await store.finish([_outcome(i, fate, owner, at) for i, fate in ran])
    running = by_fate.get(State.RUNNING, [])
    await store.claim(running, owner=owner, now=at, lease_until=plan.now + 86400)
    await store.cancel(by_fate.get(State.CANCELLED, []), now=at)


_FINISHED = (State.SUCCEEDED, State.DEAD, "RETRYING")


def _outcome(task_id: str, fate: Fate, owner: str, at: float) -> Outcome:
    if fate == State.SUCCEEDED:
        return Outcome(task_id, owner, State.SUCCEEDED, at + 0.05, result={"ok": True})
    error = AttemptError(
        1,
        at + 0.2,
        "ConnectionError: upstream refused the connection",
        traceback='Traceback (most recent call last):\n  File "handler.py", line 12\n',
        worker=owner,
        started_at=at,
    )
    if fate == State.DEAD:
        return Outcome(task_id, owner, State.DEAD, at + 0.2, error=error)
    return Outcome(task_id, owner, State.SCHEDULED, at + 0.2, error=error, run_at=at + 7 * 86400)


async def seed_url(store_url: str, plan: Plan) -> float:
    """Seed the store at ``store_url`` (opened and closed here): the tasks, then the
    schedules and workflow runs; return tasks per second."""
    settings = Settings(store=store_url, transport="memory://", coordinator="memory://")
    platform = Platform.build(settings)
    try:
        rate = await seed(platform.store, plan)
        await seed_others(platform, plan)
        return rate
    finally:
        await platform.close()


async def seed_others(platform: Platform, plan: Plan) -> None:
    """``SCHEDULES`` cron schedules and ``RUNS`` runs of a three-step workflow (a task, a
    signal, a task), most finished, the newest waiting on their signal."""
    schedules = [_schedule(n, plan.now) for n in range(SCHEDULES)]
    await schedule_store(platform).put_schedules(schedules, now=plan.now)
    workflows = workflow_store(platform)
    await workflows.put_definitions([ORDER_FLOW], now=plan.now)
    await workflows.create_runs([_run(run_id, n, plan.now) for n, run_id in enumerate(plan.runs)])


SCHEDULES = 50
RUNS = 2000
ORDER_FLOW = Definition(
    "order",
    1,
    (
        Step("charge", subject="billing.created"),
        Step("paid", StepKind.SIGNAL, after=("charge",), signal="paid", timeout=86400),
        Step("ship", after=("paid",), subject="orders.sent"),
    ),
)


def _schedule(n: int, now: float) -> Schedule:
    minutes = 5 * (n % 12 + 1)
    return Schedule(
        name=f"report-{n:02d}",
        expression=f"*/{minutes} * * * *",
        subject=SUBJECTS[n % len(SUBJECTS)],
        paused=n % 10 == 9,
        next_tick=now + 60 * minutes,
        last_tick=now - 60 * minutes,
    )


def _run(run_id: str, n: int, now: float) -> Run:
    done = StepRun(StepState.SUCCEEDED, attempts=1, started_at=now - 60, finished_at=now - 59)
    if n < RUNS * 9 // 10:
        steps = {"charge": done, "paid": done, "ship": done}
        return Run(run_id, "order", 1, RunState.SUCCEEDED, steps=steps, created_at=now - 60)
    waiting = StepRun(StepState.ACTIVE, started_at=now - 30, deadline=now + 86400)
    steps = {"charge": done, "paid": waiting, "ship": StepRun()}
    return Run(run_id, "order", 1, steps=steps, created_at=now - 60, wake_at=now + 86400)


# -- serving and timing --------------------------------------------------------------------


class Server:
    """``atp server`` over ``store`` (REST and the console, no gRPC), with a ``read`` and
    an ``admin`` token that the rate limit never slows."""

    def __init__(self, folder: Path, store: str, transport: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens: dict[str, str] = {}
        entries = []
        for name in ("read", "admin"):
            self.tokens[name], entry = new_token(name, [name], rate=1e9, burst=1_000_000_000)
            entries.append(
                f'[[tokens]]\nid = "{name}"\nhash = "{entry.hash}"\nscopes = ["{name}"]\n'
                "rate = 1e9\nburst = 1000000000\n"
            )
        tokens = folder / "tokens.toml"
        tokens.write_text("".join(entries))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [
            *(sys.executable, "-m", "atp.adapters.cli", "--log-level", "WARNING"),
            *("--store", store, "--transport", transport),
            *("server", "--port", str(self.port), "--grpc-port", "0"),
            *("--tokens-file", str(tokens)),
        ]
        self.log = folder / "server.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=log)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"atp server did not start; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)

    @contextmanager
    def session(self, token: str) -> Iterator[httpx.Client]:
        """A client signed in to the console with the ``read`` or ``admin`` token."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            page = client.get("/console/login")
            found = re.search(r'name="csrf" value="([^"]+)"', page.text)
            csrf = found.group(1) if found else ""
            form = {"token": self.tokens[token], "csrf": csrf, "next": ""}
            if client.post("/console/login", data=form).status_code != 303:
                raise RuntimeError(f"the {token} token could not sign in to the console")
            client.headers["X-CSRF-Token"] = csrf
            yield client


@dataclass(frozen=True)
class Call:
    """One timed request: a GET (of a live fragment, as htmx sends it, with ``fragment``),
    or the POST of ``form`` by an admin (a preview, which changes nothing)."""

    path: str
    fragment: bool = False
    form: dict[str, str] | None = None


def calls(facts: Facts) -> dict[str, Call]:
    """Each timed request by name."""

    def at(path: str, **query: object) -> str:
        return f"/console{path}?{urlencode(query, doseq=True)}" if query else f"/console{path}"

    since, until = _utc(facts.since), _utc(facts.until)
    found = {
        "overview": Call(at("/")),
        "overview: live summary": Call(at("/", part="summary"), fragment=True),
        "overview: live charts": Call(at("/", part="charts"), fragment=True),
        "tasks: first page": Call(at("/tasks")),
        "tasks: live table": Call(at("/tasks"), fragment=True),
        "tasks: a page halfway down (cursor)": Call(at("/tasks", cursor=facts.cursor)),
        f"tasks: subject {facts.subject}": Call(at("/tasks", subject=facts.subject)),
        f"tasks: subject {SUBJECTS[-1]} (the rarest)": Call(at("/tasks", subject=SUBJECTS[-1])),
        "tasks: subject pattern billing.*": Call(at("/tasks", subject="billing.*")),
        "tasks: state DEAD": Call(at("/tasks", state="DEAD")),
        "tasks: state RUNNING": Call(at("/tasks", state="RUNNING")),
        "tasks: five hours, a day ago": Call(at("/tasks", created_from=since, created_to=until)),
        "tasks: idempotency key": Call(at("/tasks", subject=facts.key_subject, key=facts.key)),
        "task page": Call(at(f"/tasks/{facts.task_id}")),
        "task page: live state": Call(at(f"/tasks/{facts.task_id}"), fragment=True),
        "dead letters: first page": Call(at("/dead")),
        "dead letters: live count": Call(at("/dead"), fragment=True),
        "dead letters: subject pattern billing.*": Call(at("/dead", subject="billing.*")),
        "dead letters: purge preview, billing.* (admin)": Call(
            at("/dead/preview"), form={"bulk": "purge-matching", "subject": "billing.*"}
        ),
        "schedules": Call(at("/schedules")),
        "schedules: live table": Call(at("/schedules"), fragment=True),
        "runs": Call(at("/runs")),
        "runs: live table": Call(at("/runs"), fragment=True),
        "run page (waiting on a signal)": Call(at(f"/runs/{facts.run_id}")),
        "run page: live": Call(at(f"/runs/{facts.run_id}"), fragment=True),
        "workers": Call(at("/workers")),
        "workers: live": Call(at("/workers"), fragment=True),
    }
    return found


def _utc(ts: float) -> str:
    """A ``datetime-local`` value in UTC, as the tasks page's form sends it."""
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ts))


def time_call(client: httpx.Client, call: Call, count: int) -> dict[str, float]:
    """p50 and p99 (ms) of ``count`` requests, after ``WARMUP`` untimed ones;
    RuntimeError unless every answer is 200."""
    headers = {"HX-Request": "true"} if call.fragment else {}
    took = []
    for n in range(WARMUP + count):
        started = time.perf_counter()
        if call.form is None:
            response = client.get(call.path, headers=headers)
        else:
            form = {**call.form, "csrf": client.headers["X-CSRF-Token"]}
            response = client.post(call.path, data=form)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{call.path}: {response.status_code} {response.text[:300]}")
        if n >= WARMUP:
            took.append(elapsed * 1000)
    cuts = statistics.quantiles(took, n=100, method="inclusive")
    return {"p50_ms": statistics.median(took), "p99_ms": cuts[98]}


def time_pages(server: Server, facts: Facts, repeat: int, requests: int = REQUESTS) -> Figures:
    """The medians over ``repeat`` runs of each request's p50 and p99, beside ``/healthz``."""
    with server.session("read") as reader, server.session("admin") as admin:
        floor = Call("/healthz")
        figures = {
            "raw: GET /healthz on the same server (ms)": median(
                repeat, partial(time_call, reader, floor, requests)
            )
        }
        for name, call in calls(facts).items():
            client = reader if call.form is None else admin
            figures[f"{name} (ms)"] = median(repeat, partial(time_call, client, call, requests))
    return figures


# -- the suite -----------------------------------------------------------------------------


def suite(repeat: int, count: int, concurrency: int, tasks: int = TASKS) -> Figures:
    """Seed ``tasks`` tasks into SQLite and into Redis, then time every page on each."""
    del count, concurrency  # the suite's size is the store's: ``tasks``
    plan = Plan.make(tasks, time.time())
    figures: Figures = {}
    with tempfile.TemporaryDirectory() as folder:
        figures.update(_backend("sqlite", Path(folder), plan, repeat, _sqlite(Path(folder))))
    with tempfile.TemporaryDirectory() as folder, _redis(Path(folder)) as url:
        figures.update(_backend("redis", Path(folder), plan, repeat, (url, url)))
    return figures


def _backend(name: str, folder: Path, plan: Plan, repeat: int, urls: tuple[str, str]) -> Figures:
    store, transport = urls
    rate = asyncio.run(seed_url(_seeding(store), plan))
    figures = {
        f"{name}: seed {plan.size:,} tasks, batches of {BATCH} (tasks/s)": {
            "rate": rate,
            "seconds": plan.size / rate,
        },
        f"{name}: raw rate, same run": {"rate": _raw(name, folder, store)},
    }
    with Server(folder, store, transport) as server:
        timed = time_pages(server, plan.facts(), repeat)
    figures.update({f"{name}: {page}": values for page, values in timed.items()})
    return figures


def _sqlite(folder: Path) -> tuple[str, str]:
    return f"sqlite:///{folder / 'console.db'}", "memory://"


def _seeding(store: str) -> str:
    """Seed SQLite without an fsync per batch: what is measured is reading, not writing."""
    return f"{store}?synchronous=normal" if store.startswith("sqlite") else store


def _raw(name: str, folder: Path, store: str) -> float:
    if name == "sqlite":
        return raw.sqlite_batched_writes(folder / "raw.db", 100_000, BATCH)
    from bench.redis import raw_streams

    return asyncio.run(raw_streams(store, 100_000))


@contextmanager
def _redis(folder: Path) -> Iterator[str]:
    with start_redis(folder) as server:
        yield f"{server.url}?durability=none"  # no persistence: a read benchmark
