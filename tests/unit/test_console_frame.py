"""The console's frame: signing in and out, the CSRF and origin checks, the security
headers, what a template may not hold (the CSP forbids it), and the vendored files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from atp.adapters._auth import ServerSettings
from atp.adapters.cli import _server, cli
from atp.adapters.console import _format
from atp.adapters.console._session import CSRF_COOKIE, SESSION_COOKIE
from atp.core.errors import ConfigError
from atp.core.settings import Settings
from tests.console_support import console

CONSOLE = Path(__file__).parents[2] / "adapters" / "console"


async def test_a_page_without_a_session_sends_the_browser_to_sign_in():
    async with console() as c:
        page = await c.http.get("/console/tasks?state=DEAD")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login?next=/console/tasks"
        live = await c.http.get("/console/tasks", headers={"HX-Request": "true"})
        assert live.status_code == 204
        assert live.headers["HX-Redirect"].startswith("/console/login")


async def test_signing_in_keeps_the_token_in_a_strict_http_only_cookie():
    async with console() as c:
        signed = await c.login("read")
        assert signed.status_code == 303
        assert signed.headers["location"] == "/console/"
        cookie = signed.headers["set-cookie"].lower()
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        for attribute in ("httponly", "samesite=strict", "path=/console"):
            assert attribute in cookie
        page = await c.http.get("/console/")
        assert page.status_code == 200
        assert "read only" in page.text


@pytest.mark.parametrize(
    ("token", "status", "says"),
    [("atp_nope.nope", 401, "token"), ("", 401, "bearer"), ("writer", 403, "lacks the")],
)
async def test_a_bad_token_is_refused_with_a_message_and_no_session(token, status, says):
    async with console() as c:
        await c.http.get("/console/login")
        bearer = c.tokens.get(token, token)
        answer = await c.http.post("/console/login", data={"token": bearer, "csrf": c.csrf()})
        assert answer.status_code == status
        assert says in answer.text.lower()
        assert SESSION_COOKIE not in c.http.cookies


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/v1/tasks", ""])
async def test_sign_in_goes_on_only_to_a_console_page(target):
    async with console() as c:
        await c.http.get("/console/login")
        form = {"token": c.tokens["read"], "csrf": c.csrf(), "next": target}
        answer = await c.http.post("/console/login", data=form)
        assert answer.headers["location"] == "/console/"


async def test_sign_in_goes_back_to_the_page_asked_for():
    async with console() as c:
        await c.http.get("/console/login")
        form = {"token": c.tokens["read"], "csrf": c.csrf(), "next": "/console/dead"}
        answer = await c.http.post("/console/login", data=form)
        assert answer.headers["location"] == "/console/dead"


async def test_signing_out_ends_the_session():
    async with console() as c:
        await c.login("admin")
        out = await c.post("/console/logout")
        assert out.status_code == 303
        assert SESSION_COOKIE not in c.http.cookies
        assert (await c.http.get("/console/")).status_code == 303


async def test_an_action_without_this_browsers_csrf_value_is_refused():
    async with console() as c:
        await c.login("admin")
        stale = await c.http.post("/console/logout", data={"csrf": "x" * 43})
        assert stale.status_code == 403
        assert "reload" in stale.text
        assert SESSION_COOKIE in c.http.cookies


async def test_an_action_from_another_site_is_refused_even_with_the_value():
    async with console() as c:
        await c.login("admin")
        foreign = await c.http.post(
            "/console/logout",
            data={"csrf": c.csrf()},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert SESSION_COOKIE in c.http.cookies


async def test_without_auth_the_console_is_open_and_still_checks_csrf():
    async with console(auth=False) as c:
        page = await c.http.get("/console/")
        assert page.status_code == 200
        assert CSRF_COOKIE in c.http.cookies
        assert (await c.http.get("/console/login")).headers["location"] == "/console/"
        refused = await c.http.post("/console/logout", data={"csrf": "forged"})
        assert refused.status_code == 403


async def test_every_page_carries_the_security_headers():
    async with console(auth=False) as c:
        page = await c.http.get("/console/")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "unsafe" not in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"


async def test_console_redirects_to_its_slash_and_can_be_turned_off():
    async with console(auth=False) as c:
        bare = await c.http.get("/console")
        assert (bare.status_code, bare.headers["location"]) == (308, "/console/")
    async with console(auth=False, console=False) as c:
        assert (await c.http.get("/console/")).status_code == 404
        assert (await c.http.get("/healthz")).status_code == 200


async def test_an_unknown_page_is_not_found_and_a_bad_query_is_a_page_not_json():
    async with console(auth=False) as c:
        assert (await c.http.get("/console/nowhere")).status_code == 404


INLINE = [
    (re.compile(r"\sstyle\s*="), "a style attribute"),
    (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>"), "an inline script"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "an event handler attribute"),
    (re.compile(r"<style"), "a style element"),
    (re.compile(r"hx-on"), "an hx-on attribute (needs eval)"),
    (re.compile(r"https?://(?!127\.0\.0\.1)"), "an address off this server"),
]


@pytest.mark.parametrize("template", sorted((CONSOLE / "templates").glob("*.html")), ids=str)
def test_no_template_holds_what_the_content_security_policy_forbids(template):
    text = template.read_text()
    for pattern, what in INLINE:
        found = pattern.search(text)
        assert found is None, f"{template.name} holds {what}: {found.group(0) if found else ''}"


def test_the_vendored_files_are_the_pinned_ones():
    vendor = CONSOLE / "static" / "vendor"
    readme = (vendor / "README.md").read_text()
    rows = re.findall(r"^\| (\S+) \| .* \| ([0-9a-f]{64}) \|$", readme, re.M)
    assert len(rows) == 4
    for name, digest in rows:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


def test_every_asset_the_frame_loads_exists():
    base = (CONSOLE / "templates" / "base.html").read_text()
    for path in re.findall(r"\{\{ base \}\}/static/([\w./-]+)", base):
        assert (CONSOLE / "static" / path).is_file(), path


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0.35, "350 ms"),
        (4.25, "4.2 s"),
        (200, "3 m 20 s"),
        (120, "2 m"),
        (7500, "2 h 5 m"),
        (90000, "1 d 1 h"),
        (86400, "1 d"),
    ],
)
def test_durations_read_as_people_write_them(value, text):
    assert _format.seconds(value) == text


def test_moments_and_json_are_written_plainly():
    assert _format.when(0) == "1970-01-01 00:00:00Z"
    assert _format.iso(1.5) == "1970-01-01T00:00:01.500+00:00"
    assert _format.ago(100, 160) == "1 m ago"
    assert _format.ago(200, 160) == "in 40.0 s"
    assert _format.ago(100, 100.5) == "now"
    assert _format.pretty({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'


def test_a_trace_url_without_its_placeholder_is_refused():
    with pytest.raises(ConfigError, match=r"\{trace_id\}"):
        ServerSettings.load(Settings(), trace_url="http://jaeger:16686/trace/")
    assert ServerSettings.load(Settings(), trace_url="http://j/{trace_id}").trace_url


def test_atp_server_turns_the_console_off_with_a_flag(monkeypatch):
    seen: list[ServerSettings] = []

    async def fake_serve_api(platform, config, others, *, api=True) -> None:
        seen.append(config)
        await platform.close()

    monkeypatch.setattr(_server, "serve_api", fake_serve_api)
    result = CliRunner().invoke(
        cli, ["--store", "memory://", "server", "--no-auth", "--no-console"], env={}
    )
    assert result.exit_code == 0, result.output
    assert [config.console for config in seen] == [False]
