"""``atp server`` as a real process on a SQLite store file, with tokens of every kind.

One server serves the whole module (``api_server``); tests that need their own (rate
limits, two processes) start them with ``start_server``. Every wait is a bounded poll.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from atp.adapters._auth.tokens import new_token
from tests.services import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0
SCOPES = {
    "admin": ["admin"],
    "reader": ["read"],
    "publisher": ["publish:orders.*"],
    "consumer": ["consume:orders.>"],
    "outsider": ["publish:other.*", "consume:other.>"],
}


@dataclass
class ApiServer:
    """One ``atp server`` process and the bearer tokens it accepts, by name."""

    folder: Path
    store: str
    tokens: dict[str, str]
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    port: int = 0
    grpc_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def client(self, name: str | None = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=self.headers(name) if name else {}, timeout=10
        )

    def start(self) -> ApiServer:
        self.port, self.grpc_port = free_port(), free_port()
        log = open(self.folder / f"server-{self.port}.log", "wb")  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "atp.adapters.cli",
            "--store",
            self.store,
            "server",
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            *self.args,
        ]
        self.proc = subprocess.Popen(
            command, cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self._wait_ready()
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        return (self.folder / f"server-{self.port}.log").read_text(errors="replace")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"atp server exited {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"atp server not ready in {START_TIMEOUT}s:\n{self.log_text()}")


def make_server(
    folder: Path,
    *args: str,
    rate: float = 10_000,
    burst: int = 10_000,
    store: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> ApiServer:
    """An unstarted server on ``folder``'s store with a token per name of SCOPES."""
    tokens, entries = {}, []
    for name, scopes in SCOPES.items():
        bearer, token = new_token(name, scopes)
        tokens[name] = bearer
        entries.append(token.to_mapping())
    tokens_file = folder / "tokens.toml"
    tokens_file.write_text("\n".join(_entry(e) for e in entries))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ATP_SERVER__TOKENS_FILE": str(tokens_file),
        "ATP_SERVER__RATE": str(rate),
        "ATP_SERVER__BURST": str(burst),
        "ATP_LEASE": "5",
        "ATP_HEARTBEAT": "1",
        "ATP_READY_TIMEOUT": "5",
        "ATP_REAP_INTERVAL": "0.5",
        "ATP_FORWARD_INTERVAL": "0.05",
        **(extra_env or {}),
    }
    store = store or f"sqlite:///{folder / 'atp.db'}"
    return ApiServer(folder, store, tokens, env, list(args))


def _entry(entry: dict[str, object]) -> str:
    scopes = ", ".join(f'"{s}"' for s in entry["scopes"])  # type: ignore[attr-defined]
    return f'[[tokens]]\nid = "{entry["id"]}"\nhash = "{entry["hash"]}"\nscopes = [{scopes}]\n'


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = make_server(tmp_path_factory.mktemp("api"), "--scheduler").start()
    yield server
    server.stop()


def kill_tasks(store_url: str, ids: list[str]) -> None:
    """Make READY tasks DEAD straight in the store (claim, then finish as DEAD)."""
    import asyncio

    asyncio.run(kill_tasks_async(store_url, ids))


async def kill_tasks_async(store_url: str, ids: list[str]) -> None:
    """``kill_tasks`` for a caller on an event loop."""
    from atp.core.model import AttemptError, State
    from atp.core.ports import Outcome
    from atp.plugins.sqlite.store import SqliteStore

    store = SqliteStore.from_url(store_url)
    now = time.time()
    try:
        claims = await store.claim(ids, owner="test", now=now, lease_until=now + 60)
        assert all(c.claimed for c in claims), claims
        error = AttemptError(1, now, "boom", "fail")
        await store.finish([Outcome(i, "test", State.DEAD, now, error=error) for i in ids])
    finally:
        await store.close()
