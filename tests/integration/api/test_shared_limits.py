"""The issue-21 test of shared API limits: two ``atp server`` processes on one Redis, one
token hammered through both for a few seconds, over REST and gRPC. Together they allow
the configured rate (burst + rate x time), not twice it; every refusal is a 429 with a
``Retry-After`` (gRPC: RESOURCE_EXHAUSTED with a ``retry-after`` trailer)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc
import httpx
import pytest

from atp.sdk.conformance import unique
from atp.sdk.wire.pb import tasks_pb2 as pb
from atp.sdk.wire.pb import tasks_pb2_grpc
from tests.integration.api.conftest import ApiServer, make_server

pytestmark = pytest.mark.e2e

RATE = 20.0
BURST = 10
SECONDS = 4.0


def hammer_rest(server: ApiServer, token: str, until: float, tally: Counter[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        while time.monotonic() < until:
            response = http.get("/v1/counts")
            code = str(response.status_code)
            if code == "429" and int(response.headers.get("retry-after", "0")) < 1:
                code = "429 without Retry-After"
            tally[code] += 1


def hammer_grpc(server: ApiServer, token: str, until: float, tally: Counter[str]) -> None:
    channel = grpc.insecure_channel(server.grpc_target)
    stub = tasks_pb2_grpc.TasksStub(channel)
    auth = (("authorization", f"Bearer {token}"),)
    try:
        while time.monotonic() < until:
            try:
                stub.Counts(pb.CountsRequest(), metadata=auth, timeout=10)
                tally["200"] += 1
            except grpc.RpcError as exc:
                refused = exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                after = int(dict(exc.trailing_metadata() or ()).get("retry-after", "0"))
                tally["429" if refused and after >= 1 else f"gRPC {exc.code().name}"] += 1
    finally:
        channel.close()


def run_together(jobs: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 30)
    assert not errors, errors


def test_two_servers_on_one_redis_allow_the_rate_once_not_twice(tmp_path, redis_url):
    separator = "&" if "?" in redis_url else "?"
    url = f"{redis_url}{separator}prefix={unique('limits')}"
    first = make_server(tmp_path, rate=RATE, burst=BURST, store=url)
    first.env["ATP_TRANSPORT"] = url
    second = ApiServer(first.folder, first.store, first.tokens, first.env)
    first.start(), second.start()
    try:
        token = first.tokens["reader"]
        tally: Counter[str] = Counter()
        started = time.monotonic()
        until = started + SECONDS
        run_together(
            [
                *(lambda s=s: hammer_rest(s, token, until, tally) for s in (first, second) * 2),
                lambda: hammer_grpc(second, token, until, tally),
            ]
        )
        took = time.monotonic() - started
    finally:
        first.stop()
        second.stop()
    allowed = BURST + RATE * took
    print(f"two servers, {took:.2f}s: {dict(tally)}; burst + rate x time = {allowed:.0f}")
    assert set(tally) <= {"200", "429"}, tally
    assert tally["429"] > tally["200"], f"the hammer did not outrun the limit: {tally}"
    assert 0.8 * allowed <= tally["200"] <= allowed + 2, (tally, f"{took:.2f}s")
    for server in (first, second):
        assert "no shared rate limiter" not in server.log_text()
