"""The console's dead letters page: the filter and its count (from the counters), and the
bulk actions, each through a preview whose Confirm alone acts: requeue (now, later) and
purge, of a selection or of everything the filter matches. A read token sees no form
and is refused; bad input and a stale form change nothing."""

from __future__ import annotations

import html
import re

import pytest

from atp.core.model import AttemptError, State
from atp.core.ports import Outcome
from atp.core.service import PublishRequest, TaskService
from tests.console_support import Console, console


def text(page: str) -> str:
    """The page's words, tags removed, for asserting on what a reader sees."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def listed(page: str) -> list[str]:
    """The task ids of a listing's rows, in order."""
    return re.findall(r'<tr data-task-id="([^"]+)"', page)


def hidden(page: str) -> dict[str, list[str]]:
    """The hidden fields of the confirm form, by name."""
    form = page[page.index('id="confirm-form"') :]
    found: dict[str, list[str]] = {}
    for name, value in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form):
        found.setdefault(name, []).append(html.unescape(value))
    return found


async def dead(c: Console, subject: str, count: int = 1, kind: str = "error") -> list[str]:
    """``count`` tasks of ``subject`` driven to DEAD through the store, as a worker would."""
    service = TaskService(c.platform)
    published = await service.publish([PublishRequest(subject, {"n": i}) for i in range(count)])
    ids = [p.id for p in published]
    store, now = c.platform.store, c.clock.now()
    await store.take_due(now=now, limit=1000, ready_until=now + 60)
    await store.claim(ids, owner="w1", now=now, lease_until=now + 30)
    error = AttemptError(1, now, "no route to host", kind)
    done = await store.finish([Outcome(i, "w1", State.DEAD, now, error=error) for i in ids])
    assert all(done)
    return ids


async def states(c: Console) -> dict[str, State]:
    page = await TaskService(c.platform).query(limit=1000)
    return {r.id: r.state for r in page.items}


async def dead_ids(c: Console) -> set[str]:
    return {task_id for task_id, state in (await states(c)).items() if state is State.DEAD}


async def test_the_table_shows_reason_last_error_attempts_and_a_link() -> None:
    async with console() as c:
        await c.login("admin")
        (task_id,) = await dead(c, "mail.send", kind="fail")
        page = await c.http.get("/console/dead")
        assert listed(page.text) == [task_id]
        words = text(page.text)
        assert "fail no route to host 1" in words
        assert f'href="/console/tasks/{task_id}"' in page.text
        assert f'name="ids" value="{task_id}"' in page.text
        assert "1 dead letter in all." in words


async def test_the_filter_narrows_the_table_and_its_count() -> None:
    async with console() as c:
        await c.login("read")
        mail = await dead(c, "mail.send", 2)
        await dead(c, "orders.close", 3)
        page = await c.http.get("/console/dead?subject=mail.*")
        assert sorted(listed(page.text)) == sorted(mail)
        assert "2 dead letters match mail.* ." in text(page.text)
        assert 'data-live hx-get="/console/dead?subject=mail.%2A&amp;limit=50"' in page.text
        live = await c.http.get("/console/dead?subject=mail.*", headers={"HX-Request": "true"})
        assert live.text.lstrip().startswith('<p id="dead-count" data-live')
        assert 'data-count="2"' in live.text


async def test_pages_follow_the_cursor() -> None:
    async with console() as c:
        await c.login("read")
        ids = await dead(c, "mail.send", 3)
        first = await c.http.get("/console/dead?limit=25")
        assert listed(first.text) == ids[::-1]
        assert 'id="dead-next"' not in first.text
        page = await TaskService(c.platform).dead_letters(limit=2)
        second = await c.http.get(f"/console/dead?limit=25&cursor={page.next_cursor}")
        assert listed(second.text) == [ids[0]]
        assert 'id="dead-first" href="/console/dead?limit=25"' in second.text


async def test_a_bad_pattern_shows_the_form_with_the_error() -> None:
    async with console() as c:
        await c.login("read")
        page = await c.http.get("/console/dead?subject=mail..x")
        assert page.status_code == 400
        assert 'id="dead-filter"' in page.text
        assert "mail..x" in text(page.text)


async def test_requeue_selected_previews_then_requeues_only_them() -> None:
    async with console() as c:
        await c.login("admin")
        a, b, rest = await dead(c, "mail.send", 3)
        form = {"bulk": "requeue-selected", "ids": [a, b], "subject": ""}
        preview = await c.post("/console/dead/preview", form)
        assert preview.status_code == 200
        assert "2 selected dead letters: requeue them to run now?" in text(preview.text)
        assert await dead_ids(c) == {a, b, rest}  # the preview changes nothing
        fields = hidden(preview.text)
        assert fields["scope"] == ["selected"]
        assert fields["ids"] == [a, b]
        confirm = await c.post("/console/dead/requeue", fields)
        assert confirm.status_code == 303
        assert confirm.headers["location"] == "/console/dead?done=requeued&n=2&skipped=0"
        assert await dead_ids(c) == {rest}
        after = await c.http.get(confirm.headers["location"])
        assert "Requeued 2 dead letters." in text(after.text)


async def test_requeue_all_matching_later() -> None:
    async with console() as c:
        await c.login("admin")
        mail = await dead(c, "mail.send", 2)
        (other,) = await dead(c, "orders.close")
        form = {"bulk": "requeue-matching", "subject": "mail.>", "delay": "1h"}
        preview = await c.post("/console/dead/preview", form)
        assert "2 dead letters match mail.> : requeue them to run after 1h?" in text(preview.text)
        confirm = await c.post("/console/dead/requeue", hidden(preview.text))
        assert "n=2" in confirm.headers["location"]
        assert await dead_ids(c) == {other}
        for task_id in mail:
            record = await TaskService(c.platform).get(task_id)
            assert (record.state, record.task.run_at) == (State.SCHEDULED, c.clock.now() + 3600)


async def test_purge_selected_previews_then_purges_only_them() -> None:
    async with console() as c:
        await c.login("admin")
        a, keep = await dead(c, "mail.send", 2)
        preview = await c.post("/console/dead/preview", {"bulk": "purge-selected", "ids": [a]})
        assert "1 selected dead letter: purge it for good?" in text(preview.text)
        assert await dead_ids(c) == {a, keep}
        confirm = await c.post("/console/dead/purge", hidden(preview.text))
        assert confirm.headers["location"] == "/console/dead?done=purged&n=1&skipped=0"
        assert set(await states(c)) == {keep}


async def test_purge_all_matching_counts_from_the_counters_and_purges_on_confirm() -> None:
    async with console() as c:
        await c.login("admin")
        await dead(c, "mail.send", 2)
        await dead(c, "mail.bulk", 1)
        keep = await dead(c, "orders.close", 2)
        form = {"bulk": "purge-matching", "subject": "mail.*"}
        preview = await c.post("/console/dead/preview", form)
        assert "3 dead letters match mail.* : purge them for good?" in text(preview.text)
        assert len(await dead_ids(c)) == 5
        confirm = await c.post("/console/dead/purge", hidden(preview.text))
        assert "n=3" in confirm.headers["location"]
        assert await dead_ids(c) == set(keep)


async def test_purge_everything_without_a_filter() -> None:
    async with console() as c:
        await c.login("admin")
        await dead(c, "mail.send", 2)
        await dead(c, "orders.close", 1)
        preview = await c.post("/console/dead/preview", {"bulk": "purge-matching"})
        assert "3 dead letters match no filter (every dead letter)" in text(preview.text)
        confirm = await c.post("/console/dead/purge", hidden(preview.text))
        assert "n=3" in confirm.headers["location"]
        assert await dead_ids(c) == set()


async def test_a_preview_of_nothing_offers_no_confirm() -> None:
    async with console() as c:
        await c.login("admin")
        await dead(c, "orders.close")
        preview = await c.post(
            "/console/dead/preview", {"bulk": "purge-matching", "subject": "x.*"}
        )
        assert 'id="confirm-form"' not in preview.text
        assert "nothing to do" in text(preview.text)


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"bulk": "requeue-selected"}, "no dead letter is selected"),
        ({"bulk": "purge-selected", "ids": [" "]}, "no dead letter is selected"),
        ({"bulk": "requeue-matching", "delay": "soon"}, "delay: 'soon' is not a duration"),
        ({"bulk": "purge-matching", "subject": "a..b"}, "a..b"),
        ({"bulk": "explode"}, "bulk"),
    ],
)
async def test_a_bad_preview_is_refused_with_the_reason(
    form: dict[str, object], words: str
) -> None:
    async with console() as c:
        await c.login("admin")
        await dead(c, "mail.send")
        answer = await c.post("/console/dead/preview", form)
        assert answer.status_code == 400
        assert words in text(answer.text)
        assert len(await dead_ids(c)) == 1


async def test_a_bad_delay_on_confirm_requeues_nothing() -> None:
    async with console() as c:
        await c.login("admin")
        ids = await dead(c, "mail.send", 2)
        for delay in ("soon", "-1h"):
            form = {"scope": "matching", "subject": "", "delay": delay}
            answer = await c.post("/console/dead/requeue", form)
            assert answer.status_code == 400
        assert await dead_ids(c) == set(ids)


async def test_a_selection_over_a_batch_is_refused() -> None:
    async with console(max_batch=2) as c:
        await c.login("admin")
        ids = await dead(c, "mail.send", 3)
        for path, form in (
            ("/console/dead/preview", {"bulk": "purge-selected", "ids": ids}),
            ("/console/dead/purge", {"scope": "selected", "ids": ids}),
            ("/console/dead/requeue", {"scope": "selected", "ids": ids}),
        ):
            answer = await c.post(path, form)
            assert answer.status_code == 400
            assert "at most 2" in text(answer.text)
        assert await dead_ids(c) == set(ids)


async def test_a_requeue_of_a_selection_skips_one_no_longer_dead() -> None:
    async with console() as c:
        await c.login("admin")
        a, b = await dead(c, "mail.send", 2)
        await TaskService(c.platform).requeue(a)
        confirm = await c.post("/console/dead/requeue", {"scope": "selected", "ids": [a, b]})
        assert confirm.headers["location"] == "/console/dead?done=requeued&n=1&skipped=1"
        after = await c.http.get(confirm.headers["location"])
        assert "Requeued 1 dead letter, skipped 1" in text(after.text)
        assert await dead_ids(c) == set()


async def test_a_read_token_sees_no_form_and_every_action_is_refused() -> None:
    async with console() as c:
        await c.login("read")
        ids = await dead(c, "mail.send", 2)
        page = await c.http.get("/console/dead")
        assert listed(page.text) == ids[::-1]
        assert 'method="post"' not in page.text.split("<main", 1)[1]
        assert 'name="ids"' not in page.text
        for path, form in (
            ("/console/dead/preview", {"bulk": "purge-matching"}),
            ("/console/dead/purge", {"scope": "matching"}),
            ("/console/dead/purge", {"scope": "selected", "ids": ids}),
            ("/console/dead/requeue", {"scope": "matching"}),
            ("/console/dead/requeue", {"scope": "selected", "ids": ids}),
        ):
            assert (await c.post(path, form)).status_code == 403, path
        assert await dead_ids(c) == set(ids)


async def test_a_stale_csrf_value_is_refused() -> None:
    async with console() as c:
        await c.login("admin")
        ids = await dead(c, "mail.send", 2)
        await c.http.get("/console/dead")
        stale = {"csrf": "x" * 43, "scope": "matching"}
        for path in ("/console/dead/purge", "/console/dead/requeue"):
            assert (await c.http.post(path, data=stale)).status_code == 403
        assert await dead_ids(c) == set(ids)


async def test_an_unknown_notice_code_shows_nothing() -> None:
    async with console() as c:
        await c.login("read")
        page = await c.http.get("/console/dead?done=<b>hacked</b>&n=3")
        assert "hacked" not in page.text
        assert 'class="notice"' not in page.text
