"""The console's schedules pages: the live table and a schedule's page show every field,
each admin action changes the store, bad input shows the form again and stores nothing,
and a read token sees no form and is refused."""

from __future__ import annotations

import html
import re

import pytest

from atp.adapters.console._format import when
from atp.core.cron.service import ScheduleService, define_schedule
from atp.core.ports import Fence
from atp.core.schedules import Advance, Schedule
from tests.console_support import Console, console

BERLIN = "Europe/Berlin"
FORM = {
    "name": "nightly",
    "expression": "30 3 * * *",
    "subject": "data.purge",
    "payload": '{"days": 90}',
    "tz": BERLIN,
    "misfire": "all",
    "overlap": "skip",
}


def service(c: Console) -> ScheduleService:
    return ScheduleService(c.platform)


async def add(c: Console, name: str = "beat", **changes: str) -> Schedule:
    values = {"expression": "0 * * * *", "subject": "cron.beat", **changes}
    return await service(c).add(define_schedule(name, payload={"n": 1}, **values))


async def stored(c: Console) -> list[Schedule]:
    return await service(c).list()


async def fire(c: Console, name: str) -> str:
    """Record that the leader fired ``name``'s tick an hour before its next one; the id
    of the task it fired."""
    published = await service(c).trigger(name)
    (current,) = await c.platform.store.get_schedules([name])
    assert current is not None
    last = current.next_tick - 3600
    advance = Advance(name, current.revision, current.next_tick, last, published.id)
    (done,) = await c.platform.store.advance_schedules(
        [advance], now=c.clock.now(), fence=Fence("test", 1)
    )
    assert done
    return published.id


def text(page: str) -> str:
    """The page's words, tags removed, for asserting on what a reader sees."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


async def test_the_table_shows_every_field_of_every_schedule():
    async with console() as c:
        beat = await add(c)
        await add(c, "nightly", expression="30 3 * * *", tz=BERLIN, misfire="skip", overlap="skip")
        task = await fire(c, "beat")
        await service(c).pause("nightly")
        await c.login("read")
        page = await c.http.get("/console/schedules")
        assert page.status_code == 200
        words = text(page.text)
    for field in ("beat", "cron.beat", "0 * * * *", "UTC", "nightly", "30 3 * * *", BERLIN):
        assert field in words
    for tick in service(c).upcoming(beat):
        assert when(tick) in words
    assert when(c.clock.now()) in words  # the last firing
    assert f'href="/console/tasks/{task}"' in page.text
    assert "once" in words
    assert "allow" in words
    assert "skip" in words
    assert "active" in words
    assert "paused" in words
    assert "none while paused" in words
    assert 'data-live hx-get="/console/schedules"' in page.text


async def test_the_live_table_answers_an_htmx_request_with_the_fragment_alone():
    async with console() as c:
        await add(c)
        await c.login("read")
        live = await c.http.get("/console/schedules", headers={"HX-Request": "true"})
    assert live.text.lstrip().startswith('<div id="schedules-table"')
    assert "<html" not in live.text
    assert "beat" in live.text


async def test_a_schedules_page_shows_its_definition_next_ticks_and_last_fire():
    async with console() as c:
        beat = await add(c)
        task = await fire(c, "beat")
        await c.login("read")
        page = await c.http.get("/console/schedules/beat")
    words = text(page.text)
    (current,) = [s for s in await stored(c) if s.name == "beat"]
    for tick in service(c).upcoming(current):
        assert when(tick) in words
    assert len(service(c).upcoming(current)) == 3
    assert current.last_tick is not None
    assert f"Last tick fired {when(current.last_tick)}" in words
    assert f'href="/console/tasks/{task}"' in page.text
    assert '"n": 1' in html.unescape(page.text)
    assert beat.expression in words
    assert "revision 2" in words


async def test_an_unknown_schedule_is_a_404_page():
    async with console() as c:
        await c.login("read")
        page = await c.http.get("/console/schedules/nope")
    assert page.status_code == 404
    assert "no schedule named 'nope'" in html.unescape(page.text)


async def test_the_read_token_sees_no_action_and_is_refused_every_one():
    async with console() as c:
        await add(c)
        await c.login("read")
        listing = await c.http.get("/console/schedules")
        detail = await c.http.get("/console/schedules/beat")
        for page in (listing, detail):
            assert page.text.count("<form") == 1  # signing out
            assert 'action="/console/schedules' not in page.text
            assert "/_new" not in page.text
            assert "/edit" not in page.text
            assert "/delete" not in page.text
        for path in ("/_new", "/beat/edit", "/beat/delete"):
            assert (await c.http.get(f"/console/schedules{path}")).status_code == 403
        before = await stored(c)
        for path, form in [
            ("/_new", {**FORM}),
            ("/beat/edit", {**FORM}),
            ("/beat/pause", {}),
            ("/beat/trigger", {}),
            ("/beat/delete", {}),
        ]:
            refused = await c.post(f"/console/schedules{path}", form)
            assert refused.status_code == 403, path
        assert await stored(c) == before
        assert (await c.platform.store.counts()) == {}


async def test_creating_a_schedule_stores_it_and_goes_to_its_page():
    async with console() as c:
        await c.login("admin")
        form = await c.http.get("/console/schedules/_new")
        assert 'id="schedule-form"' in form.text
        assert 'value="UTC"' in form.text
        created = await c.post("/console/schedules/_new", FORM)
        assert created.status_code == 303
        assert created.headers["location"] == "/console/schedules/nightly?done=created"
        page = await c.http.get(created.headers["location"])
        (schedule,) = await stored(c)
    assert "Schedule created" in page.text
    assert (schedule.name, schedule.expression, schedule.subject) == (
        "nightly",
        "30 3 * * *",
        "data.purge",
    )
    assert (schedule.payload, schedule.tz) == ({"days": 90}, BERLIN)
    assert (schedule.misfire.value, schedule.overlap.value, schedule.paused) == (
        "all",
        "skip",
        False,
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"expression": "61 * * * *"}, "bad cron expression"),
        ({"expression": "0 0 30 2 *"}, "cron expression"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"payload": "{days: 90"}, "payload: malformed JSON"),
        ({"payload": "[NaN]"}, "payload: malformed JSON"),
        ({"name": "-bad name"}, "schedule name must be"),
        ({"subject": "no spaces allowed"}, "subject"),
        ({"misfire": "sometimes"}, "misfire"),
        ({"overlap": ""}, "overlap"),
        ({"expression": "x" * 300}, "expression"),
    ],
)
async def test_bad_input_shows_the_form_again_with_the_error_and_stores_nothing(change, says):
    async with console() as c:
        await c.login("admin")
        answer = await c.post("/console/schedules/_new", {**FORM, **change})
        assert answer.status_code == 400
        assert await stored(c) == []
    error = re.search(r'id="schedule-form-error">([^<]*)<', answer.text)
    assert error is not None
    assert says in html.unescape(error.group(1))
    for field, value in {**FORM, **change}.items():  # what was typed is kept
        if field not in ("misfire", "overlap", "payload"):
            assert f'value="{html.escape(value)}"' in answer.text, field
    payload = re.search(r'name="payload"[^>]*>([^<]*)</textarea>', answer.text)
    assert payload is not None
    assert html.unescape(payload.group(1)) == change.get("payload", FORM["payload"])


async def test_a_taken_name_shows_the_form_again_and_changes_nothing():
    async with console() as c:
        await add(c, "nightly")
        before = await stored(c)
        await c.login("admin")
        answer = await c.post("/console/schedules/_new", FORM)
        assert answer.status_code == 409
        assert "exists already" in html.unescape(answer.text)
        assert await stored(c) == before


async def test_editing_keeps_the_pause_and_history_and_stores_the_new_definition():
    async with console() as c:
        await add(c)
        task = await fire(c, "beat")
        await service(c).pause("beat")
        await c.login("admin")
        form = await c.http.get("/console/schedules/beat/edit")
        assert 'value="0 * * * *"' in form.text
        assert "&#34;n&#34;: 1" in form.text
        assert 'name="name"' not in form.text  # a name cannot change
        change = {**FORM, "name": "ignored", "expression": "*/5 * * * *", "tz": "UTC"}
        saved = await c.post("/console/schedules/beat/edit", change)
        assert saved.headers["location"] == "/console/schedules/beat?done=updated"
        (schedule,) = await stored(c)
    assert (schedule.name, schedule.expression, schedule.subject) == (
        "beat",
        "*/5 * * * *",
        "data.purge",
    )
    assert (schedule.payload, schedule.misfire.value, schedule.overlap.value) == (
        {"days": 90},
        "all",
        "skip",
    )
    assert schedule.paused
    assert schedule.last_task == task


async def test_a_bad_edit_shows_the_form_again_and_changes_nothing():
    async with console() as c:
        await add(c)
        before = await stored(c)
        await c.login("admin")
        answer = await c.post("/console/schedules/beat/edit", {**FORM, "tz": "Nowhere/City"})
        assert answer.status_code == 400
        assert "unknown time zone" in html.unescape(answer.text)
        assert 'value="Nowhere/City"' in answer.text
        assert await stored(c) == before


async def test_editing_a_schedule_that_is_gone_does_not_create_it():
    async with console() as c:
        await c.login("admin")
        answer = await c.post("/console/schedules/beat/edit", FORM)
        assert answer.status_code == 404
        assert await stored(c) == []


async def test_pause_and_resume_change_the_store_and_return_to_the_page_they_came_from():
    async with console() as c:
        await add(c)
        await c.login("admin")
        detail = await c.http.get("/console/schedules/beat")
        assert 'class="inline schedule-pause"' in detail.text
        paused = await c.post("/console/schedules/beat/pause")
        assert paused.headers["location"] == "/console/schedules/beat?done=paused"
        assert (await service(c).get("beat")).paused
        page = await c.http.get(paused.headers["location"])
        assert "Schedule paused" in page.text
        assert 'class="inline schedule-resume"' in page.text
        resumed = await c.post("/console/schedules/beat/resume", {"back": "list"})
        assert resumed.headers["location"] == "/console/schedules?done=resumed"
        assert not (await service(c).get("beat")).paused


async def test_trigger_now_publishes_the_task_and_links_to_it():
    async with console() as c:
        await add(c)
        await c.login("admin")
        answer = await c.post("/console/schedules/beat/trigger")
        page = await c.http.get(answer.headers["location"])
        counts = await c.platform.store.counts()
    (task,) = re.findall(r'data-task-id="([0-9A-Z]{26})"', page.text)
    assert answer.headers["location"] == f"/console/schedules/beat?done=triggered&task={task}"
    assert f'href="/console/tasks/{task}"' in page.text
    assert sum(counts.values()) == 1


async def test_a_notice_shows_only_known_codes_and_task_ids_from_the_url():
    async with console() as c:
        await add(c)
        await c.login("read")
        page = await c.http.get("/console/schedules/beat?done=<b>owned</b>&task=javascript:x")
        plain = await c.http.get("/console/schedules?done=triggered&task=../../v1/tasks")
    assert "owned" not in page.text
    assert "javascript" not in page.text
    assert "Schedule triggered" in plain.text
    assert "../../v1" not in plain.text


async def test_delete_asks_first_then_removes_the_schedule():
    async with console() as c:
        await add(c)
        await c.login("admin")
        detail = await c.http.get("/console/schedules/beat")
        assert 'href="/console/schedules/beat/delete"' in detail.text
        confirm = await c.http.get("/console/schedules/beat/delete")
        assert 'id="delete-form"' in confirm.text
        assert len(await stored(c)) == 1  # looking at the question deletes nothing
        deleted = await c.post("/console/schedules/beat/delete")
        assert deleted.headers["location"] == "/console/schedules?done=deleted"
        assert await stored(c) == []
        assert (await c.post("/console/schedules/beat/delete")).status_code == 404


async def test_a_stale_csrf_value_is_refused_and_changes_nothing():
    async with console() as c:
        await add(c)
        await c.login("admin")
        await c.http.get("/console/schedules")
        for path in ("/beat/pause", "/beat/delete", "/_new"):
            answer = await c.http.post(f"/console/schedules{path}", data={**FORM, "csrf": "x" * 43})
            assert answer.status_code == 403
        (schedule,) = await stored(c)
    assert schedule.name == "beat"
    assert not schedule.paused
