"""The wire conversions of atp.sdk.wire: each message read back is what was written."""

from __future__ import annotations

import pytest

from atp.core.model import AttemptError, RetryPolicy, State, Task, TaskRecord
from atp.core.ports import Page
from atp.core.schedules import Schedule
from atp.core.service import Published, PublishRequest
from atp.sdk.client import publish_request
from atp.sdk.wire import flows, rest
from atp.sdk.wire import tasks as grpc

RECORD = TaskRecord(
    task=Task(
        id="t1",
        subject="orders.close",
        payload={"order_id": 1},
        headers={"traceparent": "00-a-b-01"},
        idempotency_key="k",
        run_at=10.0,
        created_at=5.0,
        attempt=2,
        max_attempts=3,
        timeout=30.0,
        priority=4,
        workflow_run="r1",
        step="close",
    ),
    state=State.DEAD,
    updated_at=12.0,
    result=None,
    errors=(AttemptError(1, 11.0, "boom", "error"), AttemptError(2, 12.0, "boom", "error")),
    finished_at=12.0,
)
BARE = TaskRecord(
    task=Task(id="t2", subject="a", payload=None, run_at=1.0, created_at=1.0),
    state=State.READY,
    updated_at=1.0,
)
REQUEST = publish_request(
    "orders.close",
    [1, "two"],
    delay="1m",
    idempotency_key="k",
    headers={"h": "v"},
    max_attempts=5,
    timeout=2.5,
    priority=3,
    retry=RetryPolicy(base=2.0, factor=3.0, cap=60.0, jitter=False),
)


@pytest.mark.parametrize("record", [RECORD, BARE])
def test_a_record_survives_both_wires(record):
    assert rest.record_in(rest.record_out(record)) == record
    assert grpc.record_in(grpc.record_out(record)) == record


@pytest.mark.parametrize(
    "request_", [REQUEST, publish_request("a"), publish_request("a", run_at=9)]
)
def test_a_publish_request_survives_both_wires(request_):
    assert rest.request_in(rest.request_out(request_), None) == request_
    assert grpc.request_in(grpc.request_out(request_), None) == request_


def test_a_request_without_a_key_takes_the_fallback():
    fallback = PublishRequest(subject="a", idempotency_key="key:0")
    assert rest.request_in(rest.request_out(publish_request("a")), "key:0") == fallback
    assert grpc.request_in(grpc.request_out(publish_request("a")), "key:0") == fallback


def test_pages_and_answers_survive_the_wires():
    page = Page([RECORD, BARE], "next")
    assert grpc.page_in(grpc.page_out(page)) == page
    assert (
        rest.page_in({"items": [rest.record_out(r) for r in page.items], "next_cursor": "next"})
        == page
    )
    published = Published("t1", False, 10.0)
    assert rest.published_in(rest.published_out(published)) == published
    assert grpc.published_in(grpc.published_out(published)) == published


def test_a_schedule_survives_the_wire_and_its_add_request_defines_it():
    schedule = Schedule(
        name="nightly",
        expression="0 2 * * *",
        subject="reports.build",
        payload={"kind": "daily"},
        next_tick=100.0,
        created_at=1.0,
        updated_at=2.0,
        last_tick=50.0,
    )
    assert flows.schedule_in(flows.schedule_out(schedule)) == schedule
    added = flows.add_schedule_out(schedule)
    assert (added.name, added.expression, added.subject, added.tz) == (
        "nightly",
        "0 2 * * *",
        "reports.build",
        "UTC",
    )
