"""Tokens, scopes, the rate-limit arithmetic, the guard and the server settings (no I/O)."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from atp.adapters._auth import Guard, ServerSettings, TokenBook, covers, new_token, parse_scopes
from atp.adapters._auth.guard import build_guard
from atp.adapters._auth.tokens import Token, hash_secret
from atp.adapters.cli import cli
from atp.core.clock import ManualClock
from atp.core.errors import (
    ConfigError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from atp.core.platform import Platform
from atp.core.plugins import hookimpl, make_plugin_manager
from atp.core.ports import Clock, Coordinator, TaskStore
from atp.core.settings import Settings
from atp.plugins.etcd.limiter import EtcdLimiter
from atp.plugins.memory import MemoryCoordinator, MemoryStore
from atp.plugins.memory.limiter import MemoryLimiter, refill
from atp.plugins.redis.limiter import RedisLimiter
from atp.plugins.sqlite.limiter import SqliteLimiter
from atp.sdk.wire.problems import error_from

# -- scopes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "pattern", "expected"),
    [
        ("orders.*", "orders.close", True),
        ("orders.*", "orders.*", True),
        ("orders.*", "orders.>", False),
        ("orders.*", "orders.a.b", False),
        ("orders.>", "orders.a.b", True),
        ("orders.>", "orders.*", True),
        ("orders.>", "orders", False),
        (">", ">", True),
        (">", "a.*.c", True),
        ("orders.close", "orders.*", False),
        ("*.close", "orders.close", True),
        ("*.close", "*.open", False),
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
    ],
)
def test_a_scope_covers_only_patterns_inside_it(scope, pattern, expected):
    assert covers(scope, pattern) is expected


def test_scopes_parse_and_check():
    scopes = parse_scopes(["read", "publish:orders.*", "consume:jobs.>"])
    assert scopes.texts() == ["read", "publish:orders.*", "consume:jobs.>"]
    scopes.require_read()
    scopes.require_publish("orders.close")
    scopes.require_consume("jobs.*")
    scopes.require_consume_subject("jobs.a.b")
    for denied in (
        lambda: scopes.require_admin(),
        lambda: scopes.require_publish("jobs.x"),
        lambda: scopes.require_consume(">"),
        lambda: scopes.require_consume_subject("orders.close"),
    ):
        with pytest.raises(PermissionDenied):
            denied()
    admin = parse_scopes(["admin"])
    admin.require_publish("anything.at.all")
    admin.require_consume(">")


@pytest.mark.parametrize(
    ("scopes", "subjects", "allowed"),
    [
        (["read"], [], False),
        (["consume:>"], [], False),
        (["publish:orders.*"], [], False),  # publishes nothing: needs publish on the name
        (["publish:quiet.*"], [], True),
        (["publish:>"], [], True),
        (["admin"], [], True),
        (["publish:quiet.*"], ["orders.ship"], False),  # subjects decide when there are any
        (["publish:orders.*"], ["orders.ship"], True),
        (["publish:orders.*", "read"], ["orders.ship", "mail.send"], False),
        (["admin"], ["orders.ship"], True),
    ],
)
def test_a_workflow_run_needs_publish_on_its_subjects_or_else_on_its_name(
    scopes, subjects, allowed
):
    check = parse_scopes(scopes).require_run
    if allowed:
        check("quiet.wait", subjects)
    else:
        with pytest.raises(PermissionDenied):
            check("quiet.wait", subjects)


@pytest.mark.parametrize("text", ["write", "publish", "publish:", "consume:a..b", "read:x"])
def test_unknown_or_malformed_scopes_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_scopes([text])


# -- tokens ----------------------------------------------------------------------------------


def test_a_new_token_verifies_and_only_its_hash_is_kept():
    bearer, token = new_token("ci", ["read"], rate=5, burst=10)
    assert bearer.startswith("atp_ci.")
    assert bearer.split(".", 1)[1] not in str(token)
    assert token.hash == hash_secret(bearer.split(".", 1)[1])
    book = TokenBook([Token.from_mapping(token.to_mapping())])
    assert book.verify(bearer).id == "ci"
    for wrong in (bearer + "x", "atp_ci.", "atp_other.secret", "ci.secret", bearer[4:]):
        with pytest.raises(Unauthenticated):
            book.verify(wrong)


def test_token_entries_are_checked():
    _, token = new_token("ci", ["read"])
    with pytest.raises(ConfigError, match="configured twice"):
        TokenBook([token, token])
    with pytest.raises(ConfigError, match="no 'hash'"):
        Token.from_mapping({"id": "x", "scopes": []})
    with pytest.raises(ConfigError, match="unknown scope"):
        Token.from_mapping({"id": "x", "hash": "sha256:00", "scopes": ["nope"]})
    with pytest.raises(ConfigError, match="bad id or hash"):
        Token.from_mapping({"id": "x", "hash": "md5:00", "scopes": []})
    with pytest.raises(InvalidInput):
        new_token("bad id", ["read"])


def test_token_create_prints_the_token_once_and_appends_its_entry(tmp_path):
    tokens = tmp_path / "tokens.toml"
    result = CliRunner().invoke(
        cli,
        [
            "token",
            "create",
            "ci",
            "--scope",
            "publish:orders.*",
            "--scope",
            "read",
            "--rate",
            "5",
            "--file",
            str(tokens),
        ],
    )
    assert result.exit_code == 0, result.output
    bearer = result.stdout.strip()
    book = ServerSettings(tokens_file=str(tokens)).token_book()
    token = book.verify(bearer)
    assert token.rate == 5.0
    assert token.scopes.publish == ("orders.*",)
    assert bearer.split(".", 1)[1] not in tokens.read_text()


def test_token_create_refuses_a_bad_scope():
    result = CliRunner().invoke(cli, ["token", "create", "ci", "--scope", "write"])
    assert result.exit_code == 2
    assert "unknown scope" in result.stderr


# -- server settings ---------------------------------------------------------------------


def test_server_settings_from_file_table_env_and_overrides():
    _, token = new_token("env", ["admin"])
    import json

    env = {
        "ATP_SERVER__PORT": "9000",
        "ATP_SERVER__TOKENS": json.dumps([token.to_mapping()]),
        "ATP_SERVER__AUTH": "true",
    }
    settings = Settings.load(env=env, path=None)
    server = ServerSettings.load(settings, grpc_port=0)
    assert (server.port, server.grpc_port, server.auth) == (9000, 0, True)
    assert len(server.token_book()) == 1
    with pytest.raises(ConfigError, match="unknown"):
        ServerSettings.load(Settings.load(env={"ATP_SERVER__PROT": "1"}))
    with pytest.raises(ConfigError, match="rate"):
        ServerSettings.load(Settings(), rate=0)
    with pytest.raises(ConfigError, match="JSON"):
        ServerSettings(tokens="[nope").token_book()


# -- rate limits -------------------------------------------------------------------------


def test_refill_takes_tokens_or_says_how_long_to_wait():
    assert refill(2.0, 0.0, 0.0, rate=1.0, burst=2, cost=1) == (1.0, 0.0)
    assert refill(0.0, 0.0, 0.5, rate=1.0, burst=2, cost=1) == (0.5, 0.5)
    assert refill(0.0, 0.0, 100.0, rate=1.0, burst=2, cost=1) == (1.0, 0.0)  # capped at burst
    assert refill(2.0, 0.0, 0.0, rate=1.0, burst=2, cost=3)[1] == float("inf")
    with pytest.raises(InvalidInput):
        refill(1.0, 0.0, 0.0, rate=0.0, burst=1, cost=1)


async def test_guard_authenticates_and_limits_per_token():
    clock = ManualClock()
    bearer, token = new_token("ci", ["read"])
    other, second = new_token("other", ["read"], rate=100, burst=100)
    guard = Guard(TokenBook([token, second]), MemoryLimiter(clock), rate=1.0, burst=2)
    assert (await guard.admit(f"Bearer {bearer}")).id == "ci"
    await guard.admit(f"bearer  {bearer} ")
    with pytest.raises(RateLimited) as limited:
        await guard.admit(f"Bearer {bearer}")
    assert limited.value.retry_after == pytest.approx(1.0)
    assert (await guard.admit(f"Bearer {other}")).id == "other"  # its own bucket
    await clock.advance(1.0)
    await guard.admit(f"Bearer {bearer}")
    for header in (None, "", "Basic x", "Bearer", f"Token {bearer}"):
        with pytest.raises(Unauthenticated):
            await guard.admit(header)


async def test_guard_without_auth_admits_everyone_as_admin():
    guard = Guard(TokenBook([]), MemoryLimiter(ManualClock()), rate=1, burst=1, enabled=False)
    for _ in range(5):
        who = await guard.admit(None)
        assert who.id == "anonymous"
        assert who.scopes.admin


# -- errors back in the SDK --------------------------------------------------------------


def test_problem_types_map_back_to_their_error_classes():
    assert type(error_from("urn:atp:problem:not-found", "x")) is NotFound
    assert type(error_from("urn:atp:problem:permission-denied", "x")) is PermissionDenied
    limited = error_from("urn:atp:problem:rate-limited", "slow down", 3.0)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 3.0
    assert type(error_from("urn:atp:problem:something-new", "x")).__name__ == "AtpError"


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("sqlite:///atp.db", "sqlite:///atp.db-limits?synchronous=normal"),
        ("sqlite:////srv/a.db?busy_timeout=100", "sqlite:////srv/a.db-limits?synchronous=normal"),
        ("sqlite://:memory:", "sqlite://:memory:"),
        ("redis://host", "redis://host"),
    ],
)
def test_the_default_limiter_sits_beside_a_sqlite_store(store, expected):
    from atp.adapters._auth.guard import default_limiter

    assert default_limiter(store) == expected


class NoLimits:
    """A store and coordinator for ``frob://`` URLs that serves no rate limiter."""

    @hookimpl
    def atp_make_store(self, url: str, settings: Settings, clock: Clock) -> TaskStore | None:
        return MemoryStore() if url.startswith("frob://") else None

    @hookimpl
    def atp_make_coordinator(
        self, url: str, settings: Settings, clock: Clock
    ) -> Coordinator | None:
        return MemoryCoordinator(clock) if url.startswith("frob://") else None


def guard_limiter(store: str, coordinator: str = "", limiter: str = "") -> object:
    """The limiter build_guard picks for these URLs (no I/O: limiters connect lazily)."""
    settings = Settings(store=store, coordinator=coordinator)
    plugins = make_plugin_manager(settings)
    plugins.register(NoLimits())
    platform = Platform.build(settings, plugins=plugins, clock=ManualClock())
    return build_guard(platform, ServerSettings(auth=False, limiter=limiter))._limiter


@pytest.mark.parametrize(
    ("store", "coordinator", "kind"),
    [
        ("redis://127.0.0.1:1", "", RedisLimiter),
        ("redis://127.0.0.1:1", "etcd://127.0.0.1:1", RedisLimiter),  # the store's first
        ("frob://x", "etcd://127.0.0.1:1", EtcdLimiter),
        ("frob://x", "redis://127.0.0.1:1", RedisLimiter),
        ("sqlite:///atp.db", "", SqliteLimiter),
    ],
)
def test_the_limiter_is_the_stores_else_the_coordinators(store, coordinator, kind):
    assert type(guard_limiter(store, coordinator)) is kind


def test_without_a_shared_limiter_the_guard_warns_and_limits_per_process(caplog):
    with caplog.at_level(logging.WARNING, logger="atp.server"):
        limiter = guard_limiter("frob://x", "frob://y")
    assert type(limiter) is MemoryLimiter
    assert "no shared rate limiter for store 'frob://x' or coordinator 'frob://y'" in caplog.text


def test_a_limiter_url_no_plugin_serves_is_refused_not_replaced():
    with pytest.raises(ConfigError, match="no plugin serves a rate limiter for 'frob://z'"):
        guard_limiter("frob://x", "etcd://127.0.0.1:1", limiter="frob://z")
