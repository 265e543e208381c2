"""atp beside its peers in the same run, on the same servers: huey, Dramatiq and taskiq on
Redis; taskiq-nats beside atp on NATS JetStream.

Every queue is measured the same two ways, through its own usual calls:

- **publish one by one**: one producer, each publish returned before the next, as a web
  request makes them. For atp that is ``bench/redis.py``'s ``enqueue(url, count, 1)``:
  ``TaskService.publish`` of one request, the call ``Client.publish`` makes.
- **drain**: ``count`` tasks published first, then one worker process, started by the
  queue's own command line with its default concurrency (atp: the bench's
  ``--concurrency``), runs a no-op handler. The handler is the same everywhere
  (``_Tally``): it stamps its first call and its last, and the worker process's CPU time
  (all threads) between the two, so neither the worker's start-up nor the parent's
  polling counts.

The worker commands import their app from this module (``bench.peers:dramatiq_broker``),
which builds it on first access from the environment the suite gives the child. Each
queue gets a Redis database number of its own on ``bench/redis.py``'s server (a private
``redis-server`` unless ``$ATP_BENCH_REDIS_URL``) and a name of its own per run, whose keys
are deleted after the run. The raw rates of the same servers come first.

The peers come with ``pip install -e .[peers]`` and are imported only when this suite
runs; a peer that fails to import or to run is reported on stderr and left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from bench.measure import median

__all__ = ["suite"]

URL, NAME = "ATP_BENCH_PEER_URL", "ATP_BENCH_PEER_NAME"
"""The broker URL and the queue's name, for the worker command to build its app from."""
COUNT, OUT = "ATP_BENCH_PEER_COUNT", "ATP_BENCH_PEER_OUT"
"""How many calls the handler waits for, and the file it then writes its figures to."""
ROOT = Path(__file__).resolve().parents[1]
POLL = 0.05
GRACE = 10.0
"""Seconds a worker has to stop after SIGINT before its process group is killed."""

Figures = dict[str, dict[str, float]]


class _Tally:
    """Counts the no-op handler's calls in a worker process. At the ``$ATP_BENCH_PEER_COUNT``th,
    writes the wall time of the first call and of the last, and the process's CPU time
    between them, to ``$ATP_BENCH_PEER_OUT``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # huey and Dramatiq call it from worker threads
        self._calls = self._count = 0
        self._first = self._cpu = 0.0

    def __call__(self) -> None:
        with self._lock:
            self._calls += 1
            if self._calls == 1:
                self._count = int(os.environ[COUNT])
                self._first, self._cpu = time.time(), time.process_time()
            if self._calls == self._count:
                self._write(time.time(), time.process_time() - self._cpu)

    def _write(self, last: float, cpu: float) -> None:
        out = Path(os.environ[OUT])
        part = out.with_suffix(".part")
        part.write_text(json.dumps({"first": self._first, "last": last, "cpu": cpu}))
        part.replace(out)


_TALLY = _Tally()


def _noop(i: int) -> None:
    """The handler for huey and Dramatiq's worker threads."""
    _TALLY()


async def _noop_async(i: int) -> None:
    """The handler for atp and taskiq's event loops."""
    _TALLY()


# -- the peers ---------------------------------------------------------------------------


class _Queue:
    """A peer's app on one broker under a name of its own, with the no-op task."""

    attribute: str
    """The name the worker command imports the app by, from this module."""
    app: Any

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name

    @classmethod
    def label(cls) -> str:
        """The peer, its version and how its worker runs, for the figures."""
        raise NotImplementedError

    def worker(self) -> list[str]:
        """The worker command's arguments after ``python``."""
        raise NotImplementedError

    def publish(self, count: int) -> float:
        """Publish ``count`` tasks one call at a time; return the seconds it took."""
        raise NotImplementedError

    def forget(self) -> None:
        """Delete what the run left on the server."""
        _delete_keys(self.url, self.name)


class _Huey(_Queue):
    attribute = "huey_app"

    def __init__(self, url: str, name: str) -> None:
        from huey import RedisHuey  # type: ignore[import-untyped]

        super().__init__(url, name)
        self.app = RedisHuey(name, url=url)
        self._noop = self.app.task(name="noop")(_noop)

    @classmethod
    def label(cls) -> str:
        return f"huey {_version('huey')} redis, 1 consumer process, 1 thread"

    def worker(self) -> list[str]:
        # The consumer's defaults: one worker thread, BRPOP on the queue.
        return ["-m", "huey.bin.huey_consumer", f"{__name__}.{self.attribute}", "--quiet"]

    def publish(self, count: int) -> float:
        started = time.perf_counter()
        for n in range(count):
            self._noop(n)
        return time.perf_counter() - started


class _Dramatiq(_Queue):
    attribute = "dramatiq_broker"

    def __init__(self, url: str, name: str) -> None:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker

        super().__init__(url, name)
        self.app = RedisBroker(url=url, namespace=name)  # type: ignore[no-untyped-call]
        self._noop = dramatiq.actor(actor_name="noop", broker=self.app)(_noop)

    @classmethod
    def label(cls) -> str:
        return f"dramatiq {_version('dramatiq')} redis, 1 worker process, 8 threads"

    def worker(self) -> list[str]:
        # One worker process (the CLI's default is 2) with its default 8 threads.
        reference = f"{__name__}:{self.attribute}"
        return ["-m", "dramatiq", reference, "--processes", "1", "--skip-logging"]

    def publish(self, count: int) -> float:
        started = time.perf_counter()
        for n in range(count):
            self._noop.send(n)
        return time.perf_counter() - started


class _Taskiq(_Queue):
    """taskiq over the broker ``broker()`` builds, named by the class: ``_Taskiq<Broker>``."""

    plugin: str
    """The distribution the broker comes from."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(url, name)
        self.app = self.broker()
        self._noop = self.app.task(task_name="noop")(_noop_async)

    def broker(self) -> Any:
        raise NotImplementedError

    @classmethod
    def label(cls) -> str:
        kind = cls.__name__.removeprefix("_Taskiq")
        return (
            f"taskiq {_version('taskiq')} + {cls.plugin} {_version(cls.plugin)} {kind}, "
            "1 worker process, 100 async"
        )

    def worker(self) -> list[str]:
        # One worker process (the CLI's default is 2) with its default 100 async tasks.
        reference = f"{__name__}:{self.attribute}"
        return ["-m", "taskiq", "worker", reference, "--workers", "1", "--log-level", "WARNING"]

    def publish(self, count: int) -> float:
        return asyncio.run(self._publish(count))

    async def _publish(self, count: int) -> float:
        await self.app.startup()  # connects; creates a stream's group, a JetStream consumer
        try:
            started = time.perf_counter()
            for n in range(count):
                await self._noop.kiq(n)
            return time.perf_counter() - started
        finally:
            await self.app.shutdown()


class _TaskiqListQueueBroker(_Taskiq):
    attribute, plugin = "taskiq_list", "taskiq-redis"

    def broker(self) -> Any:
        from taskiq_redis import ListQueueBroker

        return ListQueueBroker(self.url, queue_name=self.name)


class _TaskiqRedisStreamBroker(_Taskiq):
    attribute, plugin = "taskiq_stream", "taskiq-redis"

    def broker(self) -> Any:
        from taskiq_redis import RedisStreamBroker

        return RedisStreamBroker(self.url, queue_name=self.name, consumer_group_name=self.name)


class _TaskiqPullBasedJetStreamBroker(_Taskiq):
    attribute, plugin = "taskiq_jetstream", "taskiq-nats"

    def broker(self) -> Any:
        from taskiq_nats import PullBasedJetStreamBroker

        name = self.name
        return PullBasedJetStreamBroker(self.url, subject=name, stream_name=name, durable=name)

    def forget(self) -> None:
        asyncio.run(_delete_stream(self.url, self.name))


REDIS_PEERS: tuple[type[_Queue], ...] = (
    _Huey,
    _Dramatiq,
    _TaskiqListQueueBroker,
    _TaskiqRedisStreamBroker,
)
"""The peers on Redis, each on the database numbered by its place here, from 1."""
NATS_PEER: type[_Queue] = _TaskiqPullBasedJetStreamBroker
"""The peer on NATS JetStream; atp is measured on NATS if it works."""
QUEUES = {queue.attribute: queue for queue in (*REDIS_PEERS, NATS_PEER)}
"""Every peer by the attribute its worker command imports from this module."""


def _atp_app() -> Any:
    from atp.sdk.app import App
    from bench.drain import SUBJECT

    app = App("bench-peers")
    app.task(SUBJECT)(_noop_async)
    return app


def __getattr__(attribute: str) -> Any:
    """The app a worker command names (``bench.peers:huey_app``, ``bench.peers:atp_app``),
    built once, in the worker process, from the environment the suite gave it."""
    if attribute == "atp_app":
        app = _atp_app()
    elif attribute in QUEUES:
        app = QUEUES[attribute](os.environ[URL], os.environ[NAME]).app
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
    globals()[attribute] = app
    return app


# -- running a worker --------------------------------------------------------------------


def _drain(argv: list[str], env: dict[str, str], count: int) -> dict[str, float]:
    """Run ``python *argv`` until its handler has run ``count`` times; the drain rate and
    the worker's CPU per task from the tally it writes."""
    with tempfile.TemporaryDirectory(prefix="atp-bench-peers-") as folder:
        out, log = Path(folder) / "tally.json", Path(folder) / "worker.log"
        env = {**os.environ, **env, COUNT: str(count), OUT: str(out)}
        deadline = time.monotonic() + 60 + count / 100  # slower than 100 tasks/s: stuck
        with log.open("w") as sink, _worker(argv, env, sink) as proc:
            while not out.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = "stuck" if proc.returncode is None else f"exited ({proc.returncode})"
                    raise RuntimeError(f"worker {why}: {log.read_text()[-1500:]}")
                time.sleep(POLL)
        tally = json.loads(out.read_text())
    return {
        "drain_rate": count / (tally["last"] - tally["first"]),
        "worker_cpu_us_per_task": tally["cpu"] * 1e6 / count,
    }


@contextlib.contextmanager
def _worker(argv: list[str], env: dict[str, str], sink: IO[str]) -> Iterator[subprocess.Popen[str]]:
    """The worker process, in a process group of its own (Dramatiq and taskiq fork theirs):
    SIGINT, their graceful stop, on leaving; the group killed if it outstays GRACE (the
    taskiq-redis stream broker's worker never stops on a signal)."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=sink,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its leader still runs: the group is ours
            proc.wait()


# -- the runs ----------------------------------------------------------------------------


def _peer(queue_type: type[_Queue], url: str, count: int) -> dict[str, float]:
    """One run of a peer: publish one by one, then drain in one worker process."""
    name = f"bench_{secrets.token_hex(4)}"
    queue = queue_type(url, name)
    try:
        elapsed = queue.publish(count)
        drained = _drain(queue.worker(), {URL: url, NAME: name}, count)
    finally:
        queue.forget()
    return {"publish_rate": count / elapsed, **drained}


def _atp(store: str, transport: str, concurrency: int, count: int) -> dict[str, float]:
    """atp's drain: ``count`` tasks published in batches, then one ``atp worker`` process."""
    from atp.core.platform import Platform
    from atp.core.service import TaskService
    from atp.core.settings import Settings
    from bench.drain import produce
    from bench.embedded import BATCH

    async def publish() -> None:
        platform = Platform.build(Settings(store=store, transport=transport, log_level="WARNING"))
        await produce(TaskService(platform), count, BATCH, lambda n: None)
        await platform.close()

    asyncio.run(publish())
    env = {
        "ATP_STORE": store,
        "ATP_TRANSPORT": transport,
        "ATP_LOG_LEVEL": "WARNING",
        "ATP_CONCURRENCY": str(concurrency),
    }
    return _drain(["-m", "atp.adapters.cli", "worker", "bench.peers:atp_app"], env, count)


def _redis(repeat: int, count: int, concurrency: int) -> Figures:
    from bench import redis as bench_redis

    with bench_redis.server() as url:

        def atp() -> dict[str, float]:
            published = asyncio.run(bench_redis.enqueue(url, count, 1)).rate
            prefixed = bench_redis.fresh(url)
            try:
                return {"publish_rate": published, **_atp(prefixed, prefixed, concurrency, count)}
            finally:
                _delete_keys(url, prefixed.rsplit("prefix=", 1)[1])

        figures = {
            "raw redis: pipelined XADD+XREADGROUP+XACK (msg/s)": median(
                repeat, lambda: {"rate": asyncio.run(bench_redis.raw_streams(url, count))}
            ),
            # The floor of one-by-one publishing: one round trip per call, sync or asyncio.
            "raw redis one by one: sync LPUSH, asyncio EVALSHA (redis-py / Link.call)": median(
                repeat, lambda: _raw_one_by_one(url, count)
            ),
            f"atp {_version('atp')} redis, 1 worker process, concurrency {concurrency}": median(
                repeat, atp
            ),
        }
        for db, peer in enumerate(REDIS_PEERS, start=1):
            _attempt(figures, peer.label(), repeat, partial(_peer, peer, _database(url, db), count))
    return figures


def _raw_one_by_one(url: str, count: int) -> dict[str, float]:
    """Calls/s, each returned before the next: redis-py's sync LPUSH (huey's publish),
    and EVALSHA of a script that returns at once through redis-py's asyncio client and
    through the atp plugin's ``Link.call``."""
    import redis

    from bench import redis as bench_redis

    client = redis.Redis.from_url(url)
    key = f"bench-raw-{secrets.token_hex(4)}"
    started = time.perf_counter()
    for n in range(count):
        client.lpush(key, n)
    lpush = count / (time.perf_counter() - started)
    client.delete(key)
    client.close()
    floor = bench_redis.raw_evalsha
    return {
        "sync_lpush": lpush,
        "async_evalsha": asyncio.run(floor(url, count, lean=False)),
        "lean_evalsha": asyncio.run(floor(url, count, lean=True)),
    }


def _nats(repeat: int, count: int, concurrency: int) -> Figures:
    """taskiq-nats, then atp on the same JetStream server if taskiq-nats worked."""
    from bench import nats as bench_nats

    with bench_nats.server() as base:

        def atp() -> dict[str, float]:
            store, transport = bench_nats.SQLITE, bench_nats._url(base)
            try:
                published = asyncio.run(bench_nats.enqueue(store, transport, count, 1)).rate
                with tempfile.TemporaryDirectory() as folder:
                    drained = _atp(store.replace("{dir}", folder), transport, concurrency, count)
            finally:
                stream = transport.split("stream=", 1)[1].split("&", 1)[0]
                asyncio.run(_delete_stream(base, stream))
            return {"publish_rate": published, **drained}

        figures = {
            "raw jetstream publish, await each ack (msg/s)": median(
                repeat, lambda: {"rate": asyncio.run(bench_nats.raw_publish(base, count, False))}
            ),
        }
        if _attempt(figures, NATS_PEER.label(), repeat, partial(_peer, NATS_PEER, base, count)):
            label = (
                f"atp {_version('atp')} sqlite+nats, 1 worker process, concurrency {concurrency}"
            )
            figures[label] = median(repeat, atp)
        else:
            print("bench peers: atp on NATS left out, as taskiq-nats is", file=sys.stderr)
    return figures


def suite(repeat: int, count: int, concurrency: int) -> Figures:
    """Publish one by one and drain by one worker process, each the median of ``repeat``
    runs, for atp and each peer, beside the raw rate of the same server."""
    return {**_redis(repeat, count, concurrency), **_nats(repeat, count, concurrency)}


def _attempt(
    figures: Figures, label: str, repeat: int, once: Callable[[], dict[str, float]]
) -> bool:
    """``figures[label]``: the medians of ``repeat`` runs of ``once``; a peer that fails is
    reported and left out."""
    try:
        figures[label] = median(repeat, once)
    except Exception as exc:
        print(f"bench peers: {label} left out: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    return True


def _database(url: str, db: int) -> str:
    """``url`` with Redis database number ``db``."""
    return urlsplit(url)._replace(path=f"/{db}").geturl()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _delete_keys(url: str, name: str) -> None:
    """Delete every key of database ``url`` whose name holds ``name``."""
    import redis

    client = redis.Redis.from_url(url)
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"*{name}*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    client.close()


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        with contextlib.suppress(Exception):  # never created, if the run failed early
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()
