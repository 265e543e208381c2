"""Enqueue throughput through ``atp server``: REST and gRPC beside the direct client.

One ``atp server`` process (SQLite store file, authentication on, the SQLite rate limiter
counting every request) serves both APIs; the clients run in this process through the
SDK. The direct client writes to the same kind of SQLite file, and the raw SQLite rate is
measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from atp.adapters._auth.tokens import new_token
from atp.sdk.client import Client
from bench import raw
from bench.measure import median
from chaos.servers import free_port

BATCH = 100
CONCURRENT = 16
REPO = Path(__file__).resolve().parents[1]

Figures = dict[str, dict[str, float]]


def suite(repeat: int, count: int, concurrency: int) -> Figures:
    """Medians of ``repeat`` runs per scenario; one-by-one runs use a tenth of ``count``."""
    single = max(count // 20, 200)
    with tempfile.TemporaryDirectory() as folder, _server(Path(folder)) as server:
        scenarios: dict[str, Callable[[], float]] = {
            "raw sqlite: 4 batched writes per task (rows/s)": lambda: raw.sqlite_batched_writes(
                Path(folder) / f"raw-{time.monotonic_ns()}.db", count, 1000
            ),
        }
        for name, url, token in server.targets():
            scenarios[f"enqueue {name}, batches of {BATCH} (tasks/s)"] = _runner(
                url, token, count, BATCH, 1
            )
            scenarios[f"enqueue {name}, one by one (tasks/s)"] = _runner(url, token, single, 1, 1)
            scenarios[f"enqueue {name}, {CONCURRENT} callers one by one (tasks/s)"] = _runner(
                url, token, single, 1, CONCURRENT
            )
        return {name: _rate(repeat, once) for name, once in scenarios.items()}


class _Server:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = f"sqlite:///{folder / 'server.db'}"
        self.port, self.grpc_port = free_port(), free_port()
        self.token, entry = new_token("bench", ["admin"], rate=1e9, burst=1_000_000_000)
        tokens = folder / "tokens.toml"
        scopes = ", ".join(f'"{s}"' for s in entry.scopes.texts())
        tokens.write_text(
            f'[[tokens]]\nid = "bench"\nhash = "{entry.hash}"\nscopes = [{scopes}]\n'
            f"rate = 1e9\nburst = 1000000000\n"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO), "ATP_SERVER__TOKENS_FILE": str(tokens)}
        command = [
            sys.executable,
            "-m",
            "atp.adapters.cli",
            "--log-level",
            "WARNING",
            "--store",
            self.store,
            "server",
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
        ]
        self.proc = subprocess.Popen(command, cwd=folder, env=env)

    def targets(self) -> list[tuple[str, str, str | None]]:
        return [
            ("direct sqlite", f"sqlite:///{self.folder / 'direct.db'}", None),
            ("REST", f"http://127.0.0.1:{self.port}", self.token),
            ("gRPC", f"grpc://127.0.0.1:{self.grpc_port}", self.token),
        ]

    def __enter__(self) -> _Server:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("atp server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _server(folder: Path) -> _Server:
    return _Server(folder)


def _runner(
    url: str, token: str | None, count: int, batch: int, callers: int
) -> Callable[[], float]:
    return lambda: asyncio.run(_enqueue(url, token, count, batch, callers))


async def _enqueue(url: str, token: str | None, count: int, batch: int, callers: int) -> float:
    async with Client.connect(url, token=token) as client:
        await client.publish("bench.warmup")
        chunks = [range(first, min(first + batch, count)) for first in range(0, count, batch)]
        queue = list(reversed(chunks))

        async def caller() -> None:
            while queue:
                chunk = queue.pop()
                await client.publish_many(client.request("bench.noop", {"i": i}) for i in chunk)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return count / (time.perf_counter() - started)


def _rate(repeat: int, once: Callable[[], float]) -> dict[str, float]:
    return median(repeat, lambda: {"rate": once()})
