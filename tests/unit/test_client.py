"""The SDK Client and SyncClient: argument handling, every operation, and both process shapes."""

import asyncio
import inspect
import threading
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from atp.core.errors import BackendUnavailable
from atp.core.model import RetryPolicy, State
from atp.core.platform import Platform
from atp.core.plugins import hookimpl
from atp.core.scheduler.runtime import Scheduler
from atp.core.worker.runtime import Worker
from atp.sdk import (
    App,
    Client,
    ConfigError,
    Fail,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Settings,
    StateConflict,
    SyncClient,
)
from atp.sdk._http import HttpRemote
from atp.sdk.testing import TestPlatform

START = 1_750_000_000.0


@pytest.fixture
def app() -> App:
    app = App()

    @app.task("orders.close")
    async def close(order_id: int) -> int:
        return order_id * 2

    @app.task("orders.doomed", max_attempts=1)
    async def doomed(order_id: int = 0) -> None:
        raise Fail(f"order {order_id} cannot be closed")

    return app


@pytest.fixture
async def tp(app):
    async with TestPlatform(app, workers=0) as platform:
        assert platform.clock.now() == START
        yield platform


# -- publishing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "delay", [30, 30.0, "30s", "0.5m", timedelta(seconds=30)], ids=["int", "float", "s", "m", "td"]
)
async def test_delays_in_every_form(tp, delay):
    published = await tp.client.publish("orders.close", {"order_id": 1}, delay=delay)
    assert published.created
    assert published.run_at == START + 30
    record = await tp.client.get(published.id)
    assert (record.state, record.task.run_at) == (State.SCHEDULED, START + 30)


@pytest.mark.parametrize(
    "run_at",
    [
        START + 60,
        datetime.fromtimestamp(START + 60, UTC),
        datetime.fromtimestamp(START + 60, timezone(timedelta(hours=9))),
    ],
    ids=["epoch", "utc", "tokyo"],
)
async def test_run_at_as_a_time(tp, run_at):
    published = await tp.client.publish("orders.close", {"order_id": 1}, run_at=run_at)
    assert published.run_at == START + 60


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"run_at": datetime(2030, 1, 1)}, "has no timezone"),
        ({"run_at": "2030-01-01"}, "must be a datetime or seconds"),
        ({"run_at": True}, "must be a datetime or seconds"),
        ({"run_at": 12.0}, "seconds since the Unix epoch"),
        ({"delay": 5, "run_at": START + 5}, "either a delay or a run_at"),
        ({"delay": -1}, "delay must be a finite number of seconds >= 0"),
        ({"delay": timedelta(seconds=-1)}, "delay must be a finite number"),
        ({"delay": "soon"}, "delay: 'soon' is not a duration"),
        ({"delay": True}, "expected a duration"),
        ({"delay": "400d"}, "over the limit"),
        ({"timeout": "0s"}, "timeout must be a number of seconds > 0"),
        ({"timeout": "forever"}, "not a duration"),
        ({"max_attempts": 0}, "max_attempts must be 1 to 1000"),
        ({"priority": 1.5}, "priority must be an integer"),
        ({"headers": {"a": 1}}, "header names and values must be strings"),
        ({"idempotency_key": ""}, "idempotency key must be 1 to 255"),
    ],
)
async def test_bad_publish_arguments_are_refused_and_nothing_is_written(tp, options, reason):
    with pytest.raises(InvalidInput, match=reason):
        await tp.client.publish("orders.close", {"order_id": 1}, **options)
    assert await tp.client.counts() == {}


async def test_bad_subjects_and_payloads_are_refused(tp):
    with pytest.raises(InvalidInput, match="wildcards"):
        await tp.client.publish("orders.*")
    with pytest.raises(InvalidInput, match="not JSON-serialisable"):
        await tp.client.publish("orders.close", {"when": object()})
    with pytest.raises(PayloadTooLarge, match="the limit is 1048576"):
        await tp.client.publish("orders.close", "x" * 1_048_577)


async def test_every_option_reaches_the_envelope(tp):
    policy = RetryPolicy(base=2, cap=10)
    published = await tp.client.publish(
        "orders.close",
        {"order_id": 1},
        idempotency_key="order-1",
        headers={"traceparent": "00-a-b-01"},
        max_attempts=9,
        timeout="2m",
        priority=5,
        retry=policy,
    )
    task = (await tp.client.get(published.id)).task
    assert (task.idempotency_key, dict(task.headers)) == ("order-1", {"traceparent": "00-a-b-01"})
    assert (task.max_attempts, task.timeout, task.priority, task.retry) == (9, 120.0, 5, policy)
    assert task.created_at == START
    assert task.attempt == 0


async def test_an_idempotency_key_returns_the_first_task_within_its_window(app):
    async with TestPlatform(app, Settings(idempotency_window=60), workers=0) as tp:
        first = await tp.client.publish("orders.close", {"order_id": 1}, idempotency_key="k")
        second = await tp.client.publish("orders.close", {"order_id": 1}, idempotency_key="k")
        assert (second.id, first.created, second.created) == (first.id, True, False)
        assert (await tp.client.get(first.id)).task.payload == {"order_id": 1}
        await tp.advance(59)
        again = await tp.client.publish("orders.close", {"order_id": 1}, idempotency_key="k")
        assert again.id == first.id
        await tp.advance(2)
        third = await tp.client.publish("orders.close", {"order_id": 3}, idempotency_key="k")
    assert third.created
    assert third.id != first.id


async def test_an_idempotent_publish_runs_once(app):
    calls: list[int] = []

    @app.task("once")
    async def once() -> None:
        calls.append(1)

    async with TestPlatform(app) as tp:
        for _ in range(3):
            await tp.client.publish("once", idempotency_key="only-once")
            await tp.run_until_idle()
    assert calls == [1]


async def test_publish_many_is_one_batch_all_or_nothing(tp):
    requests = [tp.client.request("orders.close", {"order_id": n}, delay="1m") for n in range(3)]
    published = await tp.client.publish_many(requests)
    assert [p.run_at for p in published] == [START + 60] * 3
    assert len({p.id for p in published}) == 3
    with pytest.raises(InvalidInput):
        await tp.client.publish_many([tp.client.request("orders.close"), tp.client.request("a..b")])
    assert await tp.client.counts() == {("orders.close", State.SCHEDULED): 3}


def test_request_converts_its_arguments():
    request = Client.request(
        "a", 1, delay=timedelta(minutes=1), timeout="250ms", headers={"k": "v"}
    )
    assert (request.delay, request.timeout, dict(request.headers)) == (60.0, 0.25, {"k": "v"})
    assert Client.request("a", run_at=datetime.fromtimestamp(START, UTC)).run_at == START


def test_a_misspelt_publish_option_is_refused():
    with pytest.raises(TypeError, match="unexpected publish option 'dealy'"):
        Client.request("a", dealy=5)  # type: ignore[call-arg]


# -- inspecting -----------------------------------------------------------------------


async def test_get_an_unknown_id(tp):
    with pytest.raises(NotFound, match="no task with id 'nope'"):
        await tp.client.get("nope")


async def test_list_filters_by_subject_and_state_and_pages_newest_first(tp):
    later = [await tp.client.publish("orders.close", {"order_id": n}, delay=60) for n in range(3)]
    now = await tp.client.publish("orders.close", {"order_id": 9})
    other = await tp.client.publish("orders.doomed", delay=60)
    everything = await tp.client.list()
    assert [r.id for r in everything.items] == [other.id, now.id, *(p.id for p in later[::-1])]
    assert everything.next_cursor is None
    scheduled = await tp.client.list(subject="orders.close", states="scheduled")
    assert [r.id for r in scheduled.items] == [p.id for p in later[::-1]]
    ready = await tp.client.list(states=[State.READY, "RUNNING"])
    assert [r.id for r in ready.items] == [now.id]
    first = await tp.client.list(limit=2)
    second = await tp.client.list(limit=2, cursor=first.next_cursor)
    third = await tp.client.list(limit=2, cursor=second.next_cursor)
    paged = [r.id for page in (first, second, third) for r in page.items]
    assert paged == [r.id for r in everything.items]
    assert third.next_cursor is None


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"states": "FINISHED"}, "unknown task state"),
        ({"states": ["READY", "bogus"]}, "unknown task state"),
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"limit": 1001}, "limit must be between 1 and 1000"),
        ({"subject": "orders..x"}, "empty token"),
    ],
)
async def test_bad_listing_arguments(tp, options, reason):
    with pytest.raises(InvalidInput, match=reason):
        await tp.client.list(**options)


async def test_counts_by_subject_and_state(tp):
    await tp.client.publish("orders.close", {"order_id": 1})
    await tp.client.publish("orders.close", {"order_id": 2}, delay=5)
    await tp.client.publish("orders.doomed", delay=5)
    assert await tp.client.counts() == {
        ("orders.close", State.READY): 1,
        ("orders.close", State.SCHEDULED): 1,
        ("orders.doomed", State.SCHEDULED): 1,
    }


async def test_wait_returns_the_final_record_on_the_platform_clock(app):
    async with TestPlatform(app) as tp:
        published = await tp.client.publish("orders.close", {"order_id": 4}, delay=3)
        waiter = asyncio.create_task(tp.client.wait(published.id, timeout="1m"))
        while not waiter.done():
            await tp.advance(0.5)
        record = await waiter
    assert (record.state, record.result) == (State.SUCCEEDED, 8)
    assert tp.clock.now() - START < 5


async def test_wait_gives_up_after_its_timeout(tp):
    published = await tp.client.publish("orders.close", {"order_id": 4}, delay=3600)
    waiter = asyncio.create_task(tp.client.wait(published.id, timeout=timedelta(seconds=10)))
    while not waiter.done():
        await tp.advance(1)
    with pytest.raises(TimeoutError, match="is still SCHEDULED after 10s"):
        await waiter
    assert tp.clock.now() - START <= 11


# -- changing -------------------------------------------------------------------------


async def test_cancel_before_it_runs_and_after_it_finished(app):
    async with TestPlatform(app) as tp:
        later = await tp.client.publish("orders.close", {"order_id": 1}, delay=60)
        record = await tp.client.cancel(later.id)
        assert record.state is State.CANCELLED
        done = await tp.client.publish("orders.close", {"order_id": 2})
        await tp.run_until_idle()
        with pytest.raises(StateConflict, match="SUCCEEDED, it can no longer be cancelled"):
            await tp.client.cancel(done.id)
        with pytest.raises(NotFound):
            await tp.client.cancel("nope")


async def test_dead_letters_requeue_and_purge(app):
    async with TestPlatform(app) as tp:
        doomed = [await tp.client.publish("orders.doomed", {"order_id": n}) for n in range(3)]
        alive = await tp.client.publish("orders.close", {"order_id": 5})
        await tp.run_until_idle()
        page = await tp.client.dead_letters(subject="orders.*")
        assert [r.id for r in page.items] == [p.id for p in doomed[::-1]]
        assert page.items[0].errors[-1].message == "order 2 cannot be closed"
        with pytest.raises(StateConflict, match="only DEAD tasks are requeued"):
            await tp.client.requeue(alive.id)
        with pytest.raises(NotFound):
            await tp.client.requeue("nope")

        requeued = await tp.client.requeue(doomed[0].id, delay="10s", payload={"order_id": 42})
        assert (requeued.state, requeued.task.attempt) == (State.SCHEDULED, 0)
        assert requeued.task.run_at == tp.clock.now() + 10
        assert requeued.task.payload == {"order_id": 42}
        record = await tp.wait(doomed[0].id)
        assert record.state is State.DEAD
        assert record.task.attempt == 1
        assert [e.message for e in record.errors] == [
            "order 0 cannot be closed",
            "order 42 cannot be closed",
        ]
        kept = await tp.client.requeue(doomed[1].id)
        assert kept.task.payload == {"order_id": 1}
        assert kept.task.run_at == tp.clock.now()
        await tp.run_until_idle()

        assert await tp.client.purge([doomed[0].id, alive.id]) == 1
        assert await tp.client.purge() == 2
        assert [r.id for r in await tp.tasks()] == [alive.id]
        with pytest.raises(InvalidInput, match="a list of ids"):
            await tp.client.purge(alive.id)


async def test_requeue_can_set_the_payload_to_null(app):
    seen: list[object] = []

    @app.task("nullable", max_attempts=1)
    async def nullable(value: object = "absent") -> None:
        seen.append(value)
        if value != "absent":
            raise Fail("try again with nothing")

    async with TestPlatform(app) as tp:
        published = await tp.client.publish("nullable", ["something"])
        await tp.run_until_idle()
        await tp.client.requeue(published.id, payload=None)
        record = await tp.wait(published.id)
    assert record.state is State.SUCCEEDED
    assert seen == [["something"], "absent"]


async def test_requeue_of_a_task_that_never_ran_is_a_conflict(tp):
    published = await tp.client.publish("orders.close", {"order_id": 1}, delay=60)
    with pytest.raises(StateConflict, match="only DEAD tasks are requeued"):
        await tp.client.requeue(published.id, payload={"order_id": 2})


# -- building a client ----------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ATP_STORE", "ATP_TRANSPORT", "ATP_COORDINATOR", "ATP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


async def test_connect_with_a_store_url_over_loaded_settings(workdir, monkeypatch):
    monkeypatch.setenv("ATP_MAX_ATTEMPTS", "7")
    async with Client.connect(f"sqlite:///{workdir}/a.db") as client:
        assert client.platform.settings.store == f"sqlite:///{workdir}/a.db"
        assert client.platform.settings.max_attempts == 7
        assert not client.platform.local
        published = await client.publish("orders.close", {"order_id": 1})
        assert (await client.get(published.id)).state is State.SCHEDULED
    assert (workdir / "a.db").exists()


async def test_connect_from_configuration_only(workdir):
    (workdir / "atp.toml").write_text(f'[atp]\nstore = "sqlite:///{workdir}/conf.db"\n')
    async with Client.connect() as client:
        assert client.platform.settings.store == f"sqlite:///{workdir}/conf.db"
        assert "conf.db" in repr(client)


async def test_connect_with_explicit_settings(workdir):
    settings = Settings(store="sqlite:///ignored.db", max_attempts=2)
    client = Client.connect(f"sqlite:///{workdir}/b.db", settings=settings)
    assert client.platform.settings.store == f"sqlite:///{workdir}/b.db"
    assert client.platform.settings.max_attempts == 2
    await client.close()
    await client.close()
    only = Client.connect(settings=settings.replace(store=f"sqlite:///{workdir}/c.db"))
    assert only.platform.settings.store.endswith("c.db")
    await only.close()


def test_connect_to_a_scheme_nobody_serves(workdir):
    with pytest.raises(ConfigError, match="no plugin serves store URL scheme 'nope'"):
        Client.connect("nope://somewhere", settings=Settings(coordinator="memory://"))


async def test_a_client_of_a_server_has_no_platform_and_only_grpc_retrieves():
    async with Client.connect("http://127.0.0.1:9", token="t") as client:
        assert "HttpRemote('http://127.0.0.1:9')" in repr(client)
        with pytest.raises(ConfigError, match="reaches an atp server: it has no platform"):
            client.platform  # noqa: B018
        with pytest.raises(ConfigError, match="needs a client connected with a grpc:// URL"):
            client.retrieve("orders.*")


async def test_a_local_client_retrieves_nothing(tp):
    with pytest.raises(ConfigError, match="needs a client connected with a grpc:// URL"):
        tp.client.retrieve("orders.*")


def test_sync_client_methods_are_the_client_methods():
    for name in ("publish", "get", "list", "wait", "requeue", "add_schedule", "list_runs"):
        blocking, coroutine = getattr(SyncClient, name), getattr(Client, name)
        assert blocking.__doc__ == coroutine.__doc__
        assert inspect.signature(blocking.__wrapped__) == inspect.signature(coroutine)


async def test_a_client_over_a_shared_platform_leaves_it_open(tp):
    async with Client(tp.platform) as client:
        await client.publish("orders.close", {"order_id": 1})
    assert await tp.client.counts() == {("orders.close", State.READY): 1}


async def test_a_producer_process_hands_tasks_to_the_dev_process_through_the_store(workdir, app):
    """A Client on a process-local transport, with no workers, leaves tasks in the store;
    the `atp dev` process (another Platform on the same SQLite file) forwards and runs them."""
    url = f"sqlite:///{workdir}/shared.db"
    async with Client.connect(url) as producer:
        published = await producer.publish("orders.close", {"order_id": 21})
        assert (await producer.get(published.id)).state is State.SCHEDULED
        stop = asyncio.Event()
        async with Platform.build(Settings(store=url), local=True) as dev:
            runners = [
                asyncio.create_task(Worker(dev, app.registry).run(stop)),
                asyncio.create_task(Scheduler(dev).run(stop)),
            ]
            try:
                record = await producer.wait(published.id, timeout=20)
            finally:
                stop.set()
                await asyncio.gather(*runners)
    assert (record.state, record.result, record.task.attempt) == (State.SUCCEEDED, 42, 1)


# -- SyncClient -----------------------------------------------------------------------


def test_sync_client_does_what_the_client_does(workdir):
    with SyncClient.connect(f"sqlite:///{workdir}/sync.db") as client:
        assert isinstance(client.client, Client)
        published = client.publish("orders.close", {"order_id": 1}, delay="1m")
        assert client.get(published.id).state is State.SCHEDULED
        batch = client.publish_many(
            [client.request("orders.close", {"order_id": n}) for n in (2, 3)]
        )
        assert [r.id for r in client.list(states="SCHEDULED").items] == [
            batch[1].id,
            batch[0].id,
            published.id,
        ]
        assert client.counts() == {("orders.close", State.SCHEDULED): 3}
        assert client.cancel(published.id).state is State.CANCELLED
        assert client.wait(published.id, timeout=1).state is State.CANCELLED
        assert client.dead_letters().items == []
        with pytest.raises(StateConflict):
            client.requeue(published.id)
        assert client.purge() == 0
        with pytest.raises(NotFound):
            client.get("nope")
        assert repr(client).startswith("SyncClient(store=")
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        client.get(published.id)
    client.close()


def test_sync_client_is_shared_by_threads(workdir):
    with SyncClient.connect(f"sqlite:///{workdir}/threads.db") as client:
        ids: list[str] = []
        lock = threading.Lock()

        def produce(n: int) -> None:
            for i in range(5):
                published = client.publish("orders.close", {"order_id": n * 10 + i}, delay=60)
                with lock:
                    ids.append(published.id)

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(ids)) == 20
        assert client.counts() == {("orders.close", State.SCHEDULED): 20}


class CallsBack:
    """A hook that calls the SyncClient from the client's own loop thread."""

    def __init__(self) -> None:
        self.client: SyncClient | None = None
        self.errors: list[BaseException] = []

    @hookimpl
    def atp_task_enqueued(self, tasks) -> None:
        assert self.client is not None
        try:
            self.client.get(tasks[0].id)
        except RuntimeError as exc:
            self.errors.append(exc)


def test_sync_client_refuses_a_call_from_its_own_loop(workdir):
    from atp.core.plugins import make_plugin_manager

    settings = Settings(store=f"sqlite:///{workdir}/loop.db")
    manager = make_plugin_manager(settings, entry_points=False)
    hook = CallsBack()
    manager.register(hook, "calls-back")
    with SyncClient.connect(settings=settings, plugins=manager) as client:
        hook.client = client
        client.publish("orders.close", {"order_id": 1})
    (error,) = hook.errors
    assert "from its own loop thread" in str(error)


async def test_sync_client_publishes_to_a_running_dev_process(workdir, app):
    url = f"sqlite:///{workdir}/mixed.db"
    client = await asyncio.to_thread(SyncClient.connect, url)
    stop = asyncio.Event()
    async with Platform.build(Settings(store=url), local=True) as dev:
        runners = [
            asyncio.create_task(Worker(dev, app.registry).run(stop)),
            asyncio.create_task(Scheduler(dev).run(stop)),
        ]
        try:
            published = await asyncio.to_thread(client.publish, "orders.close", {"order_id": 5})
            record = await asyncio.to_thread(client.wait, published.id, 20)
        finally:
            stop.set()
            await asyncio.gather(*runners)
            await asyncio.to_thread(client.close)
    assert (record.state, record.result) == (State.SUCCEEDED, 10)


def test_a_sync_client_that_cannot_be_built_leaves_no_thread(workdir):
    before = threading.active_count()
    with pytest.raises(ConfigError):
        SyncClient.connect("nope://x", settings=Settings(coordinator="memory://"))
    assert threading.active_count() == before


async def test_limits_on_batches_headers_and_times(tp):
    from atp.core.service import MAX_BATCH, PublishRequest

    with pytest.raises(InvalidInput, match=f"at most {MAX_BATCH} tasks"):
        await tp.client.publish_many([PublishRequest("a")] * (MAX_BATCH + 1))
    with pytest.raises(InvalidInput, match="headers must be an object"):
        await tp.client.publish_many([PublishRequest("a", headers=["x"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="at most 64 headers"):
        await tp.client.publish("a", headers={f"h{n}": "v" for n in range(65)})
    with pytest.raises(PayloadTooLarge, match="headers are over 16384 characters"):
        await tp.client.publish("a", headers={"big": "x" * 16_384})
    with pytest.raises(InvalidInput, match="further ahead than max_delay"):
        await tp.client.publish("a", run_at=START + 400 * 86400)
    assert await tp.client.counts() == {}


async def test_a_link_error_without_text_still_says_what_broke() -> None:
    remote = HttpRemote("http://127.0.0.1:9", None)

    async def reset(*_: object, **__: object) -> None:
        raise httpx.ReadError("")  # what httpx raises for a reset link

    remote._http.request = reset  # type: ignore[method-assign]
    with pytest.raises(BackendUnavailable, match=r"atp server http://127\.0\.0\.1:9: ReadError$"):
        await remote.call("GET", "/healthz")
    await remote.close()
