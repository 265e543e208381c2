"""The console's tasks pages: the filters and paging of the live table, every part of a
task's page, and its actions (cancel, requeue now, later or with an edited payload),
which change the store, refuse a read token and bad input, and change nothing then."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import pytest

from atp.adapters.console._format import when
from atp.adapters.console._tasks import trace_id
from atp.core.model import AttemptError, State, TaskRecord
from atp.core.ports import Outcome
from atp.core.service import PublishRequest, TaskService
from tests.console_support import Console, console

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def text(page: str) -> str:
    """The page's words, tags removed, for asserting on what a reader sees."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def listed(page: str) -> list[str]:
    """The task ids of a listing's rows, in order."""
    return re.findall(r'<tr data-task-id="([^"]+)"', page)


async def publish(c: Console, *requests: PublishRequest) -> list[str]:
    return [p.id for p in await TaskService(c.platform).publish(list(requests))]


async def run(c: Console, ids: Sequence[str], owner: str = "w1") -> None:
    """Take the tasks due and lease ``ids`` to ``owner``, as a worker would."""
    store, now = c.platform.store, c.clock.now()
    await store.take_due(now=now, limit=1000, ready_until=now + 60)
    await store.claim(list(ids), owner=owner, now=now, lease_until=now + 30)


async def end(c: Console, ids: Sequence[str], state: State, **outcome: object) -> None:
    """Finish the running attempt of ``ids`` with ``state``, as worker w1 would."""
    now = c.clock.now()
    done = await c.platform.store.finish(
        [Outcome(i, "w1", state, now, **outcome) for i in ids]  # type: ignore[arg-type]
    )
    assert all(done)


async def dead(c: Console, subject: str = "imports.parse", payload: object = None) -> str:
    """A task that failed once, on worker w1 after 2.5 s, and is dead."""
    (task_id,) = await publish(c, PublishRequest(subject, payload, max_attempts=1))
    await run(c, [task_id])
    started = c.clock.now()
    await c.clock.advance(2.5)
    error = AttemptError(
        1, c.clock.now(), "line 1: bad header", "error", "Traceback: boom", "w1", started
    )
    await end(c, [task_id], State.DEAD, error=error)
    return task_id


async def record(c: Console, task_id: str) -> TaskRecord:
    return await TaskService(c.platform).get(task_id)


# -- the listing ----------------------------------------------------------------------


async def test_the_table_shows_each_task_with_a_link_state_attempts_and_last_error() -> None:
    async with console() as c:
        await c.login("read")
        (alive,) = await publish(c, PublishRequest("orders.close", {"n": 1}, max_attempts=4))
        gone = await dead(c)
        page = await c.http.get("/console/tasks")
        assert page.status_code == 200
        assert listed(page.text) == [gone, alive]  # newest first
        assert f'href="/console/tasks/{alive}"' in page.text
        assert 'class="badge state-DEAD"' in page.text
        words = text(page.text)
        assert "error: line 1: bad header" in words
        assert " 0/4 " in words
        assert 'data-live hx-get="/console/tasks?limit=50"' in page.text


async def test_subject_state_and_key_filters_narrow_the_table() -> None:
    async with console() as c:
        await c.login("read")
        gone = await dead(c, "orders.fail")
        a, b = await publish(
            c,
            PublishRequest("orders.close", idempotency_key="k-1"),
            PublishRequest("orders.open"),
        )
        (other,) = await publish(c, PublishRequest("mail.send"))
        get = c.http.get
        assert listed((await get("/console/tasks?subject=orders.*")).text) == [b, a, gone]
        by_state = await get("/console/tasks?subject=orders.*&state=DEAD&state=READY")
        assert listed(by_state.text) == [b, a, gone]
        assert listed((await get("/console/tasks?state=DEAD")).text) == [gone]
        assert listed((await get("/console/tasks?state=RUNNING")).text) == []
        keyed = await get("/console/tasks?subject=orders.close&key=k-1")
        assert listed(keyed.text) == [a]
        assert other not in listed((await get("/console/tasks?subject=orders.>")).text)


async def test_the_created_range_is_read_as_utc() -> None:
    async with console() as c:
        await c.login("read")
        await c.past_every_id()
        (early,) = await publish(c, PublishRequest("orders.close"))
        await c.clock.advance(3600)
        (late,) = await publish(c, PublishRequest("orders.close"))
        cut = when(c.clock.now() - 1800)[:-1].replace(" ", "T")  # a datetime-local value
        after = await c.http.get(f"/console/tasks?created_from={cut}")
        before = await c.http.get(f"/console/tasks?created_to={cut}")
        assert listed(after.text) == [late]
        assert listed(before.text) == [early]
        assert f'value="{cut}"' in after.text  # the form keeps what was asked


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("created_from=yesterday", "created from: 'yesterday' is not a date and time"),
        ("key=k-1", "give the task's subject too"),
        ("subject=orders.*&key=k-1", "needs an exact subject"),
        ("subject=orders..x", "orders..x"),
        ("limit=0", "limit"),
    ],
)
async def test_a_bad_filter_shows_the_form_with_the_error(query: str, words: str) -> None:
    async with console() as c:
        await c.login("read")
        await publish(c, PublishRequest("orders.close"))
        page = await c.http.get(f"/console/tasks?{query}")
        assert page.status_code == 400
        assert 'id="tasks-filter"' in page.text
        assert words in text(page.text)
        assert listed(page.text) == []


async def test_an_id_jumps_to_the_task_and_an_unknown_one_is_not_found() -> None:
    async with console() as c:
        await c.login("read")
        (task_id,) = await publish(c, PublishRequest("orders.close"))
        jump = await c.http.get(f"/console/tasks?id=+{task_id}+")
        assert jump.status_code == 303
        assert jump.headers["location"] == f"/console/tasks/{task_id}"
        missing = await c.http.get("/console/tasks/NOPE")
        assert missing.status_code == 404
        assert "no task with id 'NOPE'" in text(missing.text)


async def test_pages_follow_the_cursor_and_keep_the_filter() -> None:
    async with console() as c:
        await c.login("read")
        ids = await publish(c, *[PublishRequest("orders.close") for _ in range(5)])
        await publish(c, PublishRequest("mail.send"))
        first = await c.http.get("/console/tasks?subject=orders.close&limit=25")
        assert listed(first.text) == ids[::-1]
        assert 'id="tasks-next"' not in first.text
        small = await c.http.get("/console/tasks?subject=orders.close&limit=2")
        assert 'id="tasks-first"' not in small.text
        seen = listed(small.text)
        while found := re.search(r'id="tasks-next" href="([^"]+)"', small.text):
            small = await c.http.get(html.unescape(found.group(1)))
            assert 'id="tasks-first" href="/console/tasks?subject=orders.close&amp;limit=2"' in (
                small.text
            )
            seen += listed(small.text)
        assert seen == ids[::-1]


async def test_the_live_table_answers_an_htmx_request_with_the_fragment_alone() -> None:
    async with console() as c:
        await c.login("read")
        (task_id,) = await publish(c, PublishRequest("orders.close"))
        fragment = await c.http.get("/console/tasks?limit=50", headers={"HX-Request": "true"})
        assert fragment.text.lstrip().startswith('<div id="tasks-table" data-live')
        assert "<html" not in fragment.text
        assert listed(fragment.text) == [task_id]


# -- a task's page --------------------------------------------------------------------


async def test_a_tasks_page_shows_its_envelope_headers_payload_and_trace() -> None:
    async with console(trace_url="https://traces.example/t/{trace_id}") as c:
        await c.login("read")
        (task_id,) = await publish(
            c,
            PublishRequest(
                "orders.close",
                {"order": 7, "lines": [1, 2]},
                headers={"traceparent": TRACEPARENT, "tenant": "acme"},
                idempotency_key="close-7",
                max_attempts=5,
                timeout=30,
                priority=3,
                concurrency_key="acme",
            ),
        )
        page = await c.http.get(f"/console/tasks/{task_id}")
        assert page.status_code == 200
        words = text(page.text)
        for part in ("orders.close", "close-7", "Max attempts 5", "Timeout 30.0 s", "Priority 3"):
            assert part in words
        assert "Concurrency key acme" in words
        assert "tenant acme" in words  # the headers table
        assert '"order": 7' in html.unescape(page.text)  # pretty JSON
        assert f'href="https://traces.example/t/{TRACE}"' in page.text
        assert "Not run yet." in words


async def test_without_a_trace_url_the_trace_id_is_shown_unlinked() -> None:
    async with console() as c:
        await c.login("read")
        headers = {"traceparent": TRACEPARENT}
        (task_id,) = await publish(c, PublishRequest("orders.close", headers=headers))
        page = await c.http.get(f"/console/tasks/{task_id}")
        assert f'<span class="mono">{TRACE}</span>' in page.text
        assert "traces.example" not in page.text


@pytest.mark.parametrize(
    ("header", "found"),
    [
        (TRACEPARENT, TRACE),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
        ("00-xyz-00f067aa0ba902b7-01", None),
        ("", None),
    ],
)
def test_the_trace_id_is_the_second_field_of_a_valid_traceparent(
    header: str, found: str | None
) -> None:
    assert trace_id({"traceparent": header}) == found


async def test_the_timeline_shows_each_failure_with_worker_duration_and_traceback() -> None:
    async with console() as c:
        await c.login("read")
        task_id = await dead(c)
        page = await c.http.get(f"/console/tasks/{task_id}")
        words = text(page.text)
        assert 'data-attempt="1" data-outcome="failed"' in page.text
        assert "Attempt 1 failed (error)" in words
        assert "on w1 after 2.5 s" in words
        assert "line 1: bad header" in words
        assert "<summary>Traceback</summary><pre>Traceback: boom</pre>" in page.text


async def test_a_running_then_succeeded_task_shows_its_lease_then_its_result() -> None:
    async with console() as c:
        await c.login("read")
        (task_id,) = await publish(c, PublishRequest("orders.close"))
        await run(c, [task_id], owner="w1")
        running = await c.http.get(f"/console/tasks/{task_id}")
        assert 'data-outcome="running"' in running.text
        assert "w1 until" in text(running.text)
        await end(c, [task_id], State.SUCCEEDED, result={"closed": True})
        done = await c.http.get(f"/console/tasks/{task_id}", headers={"HX-Request": "true"})
        assert done.text.lstrip().startswith('<div id="task-state" data-live')
        assert 'data-attempt="1" data-outcome="succeeded"' in done.text
        assert "on w1" in text(done.text)
        assert '"closed": true' in html.unescape(done.text)


async def test_a_workflow_step_links_to_its_run() -> None:
    async with console() as c:
        await c.login("read")
        (task_id,) = await publish(c, PublishRequest("orders.close"))
        store = c.platform.store
        (stored,) = await store.get([task_id])
        assert stored is not None
        # the envelope of a step, as the workflow engine writes it
        step = stored.task.replace(id="step-1", workflow_run="run-9", step="charge")
        now = c.clock.now()
        await store.create([step], now=now, idempotency_window=0)
        page = await c.http.get("/console/tasks/step-1")
        assert '<a id="task-run" href="/console/runs/run-9">run-9</a>' in page.text
        assert "step charge" in text(page.text)


# -- actions --------------------------------------------------------------------------


async def test_cancel_is_confirmed_then_cancels_the_task() -> None:
    async with console() as c:
        await c.login("orders")
        (task_id,) = await publish(c, PublishRequest("orders.close"))
        page = await c.http.get(f"/console/tasks/{task_id}")
        assert 'id="cancel-confirm"' in page.text
        assert "<details" in page.text
        assert 'id="requeue-form"' not in page.text  # not dead
        answer = await c.post(f"/console/tasks/{task_id}/cancel")
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/console/tasks/{task_id}?done=cancelled"
        assert (await record(c, task_id)).state is State.CANCELLED
        after = await c.http.get(answer.headers["location"])
        assert "The task is cancelled" in text(after.text)
        assert 'id="cancel-form"' not in after.text


async def test_a_token_that_may_not_publish_the_subject_cannot_cancel() -> None:
    async with console() as c:
        await c.login("orders")
        (task_id,) = await publish(c, PublishRequest("mail.send"))
        page = await c.http.get(f"/console/tasks/{task_id}")
        assert 'id="cancel-form"' not in page.text
        refused = await c.post(f"/console/tasks/{task_id}/cancel")
        assert refused.status_code == 403
        assert (await record(c, task_id)).state is State.READY


async def test_requeue_now_and_later() -> None:
    async with console() as c:
        await c.login("admin")
        now_id, later_id = await dead(c), await dead(c)
        page = await c.http.get(f"/console/tasks/{now_id}")
        assert 'id="requeue-form"' in page.text
        assert 'id="requeue-payload-form"' in page.text
        answer = await c.post(f"/console/tasks/{now_id}/requeue", {"delay": ""})
        assert answer.headers["location"] == f"/console/tasks/{now_id}?done=requeued"
        requeued = await record(c, now_id)
        assert (requeued.state, requeued.task.run_at) == (State.SCHEDULED, c.clock.now())
        await c.post(f"/console/tasks/{later_id}/requeue", {"delay": "10m"})
        later = await record(c, later_id)
        assert (later.state, later.task.run_at) == (State.SCHEDULED, c.clock.now() + 600)


async def test_requeue_with_an_edited_payload_runs_it_with_that_payload() -> None:
    async with console() as c:
        await c.login("admin")
        task_id = await dead(c, payload={"url": "old"})
        page = await c.http.get(f"/console/tasks/{task_id}")
        assert '"url": "old"' in html.unescape(page.text)  # the textarea holds it, pretty
        answer = await c.post(f"/console/tasks/{task_id}/requeue", {"payload": '{"url": "new"}'})
        assert answer.status_code == 303
        requeued = await record(c, task_id)
        assert (requeued.state, requeued.task.payload) == (State.SCHEDULED, {"url": "new"})


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"payload": '{"url": '}, "malformed JSON"),
        ({"payload": "{}", "delay": "soon"}, "delay: 'soon' is not a duration"),
        ({"delay": "-5m"}, "delay"),
    ],
)
async def test_bad_requeue_input_shows_the_error_and_changes_nothing(
    form: dict[str, str], words: str
) -> None:
    async with console() as c:
        await c.login("admin")
        task_id = await dead(c, payload={"url": "old"})
        answer = await c.post(f"/console/tasks/{task_id}/requeue", form)
        assert answer.status_code == 400
        assert words in text(answer.text)
        if "payload" in form:  # the edit is kept for another try
            assert form["payload"] in html.unescape(answer.text)
        after = await record(c, task_id)
        assert (after.state, after.task.payload) == (State.DEAD, {"url": "old"})


async def test_a_read_token_sees_no_action_and_is_refused() -> None:
    async with console() as c:
        await c.login("read")
        task_id = await dead(c)
        (alive,) = await publish(c, PublishRequest("orders.close"))
        for shown in (task_id, alive):
            page = await c.http.get(f"/console/tasks/{shown}")
            assert '<form method="post" action="/console/tasks' not in page.text
            assert 'id="task-actions"' not in page.text
        assert (await c.post(f"/console/tasks/{task_id}/requeue")).status_code == 403
        assert (await c.post(f"/console/tasks/{alive}/cancel")).status_code == 403
        assert (await record(c, task_id)).state is State.DEAD
        assert (await record(c, alive)).state is State.READY


async def test_a_stale_csrf_value_is_refused() -> None:
    async with console() as c:
        await c.login("admin")
        task_id = await dead(c)
        (alive,) = await publish(c, PublishRequest("orders.close"))
        stale = {"csrf": "x" * 43}
        requeue = await c.http.post(f"/console/tasks/{task_id}/requeue", data=stale)
        cancel = await c.http.post(f"/console/tasks/{alive}/cancel", data=stale)
        assert (requeue.status_code, cancel.status_code) == (403, 403)
        assert (await record(c, task_id)).state is State.DEAD
        assert (await record(c, alive)).state is State.READY


async def test_cancelling_a_finished_task_is_refused_and_changes_nothing() -> None:
    async with console() as c:
        await c.login("admin")
        task_id = await dead(c)
        answer = await c.post(f"/console/tasks/{task_id}/cancel")
        assert answer.status_code == 409
        assert (await record(c, task_id)).state is State.DEAD
