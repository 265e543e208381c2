"""A real atp deployment on this machine: servers, a fault proxy in front of them, processes.

Every server is private (started on a free port in the run's folder), and every atp
process reaches it through a proxy of the Toxiproxy API, so a suite can cut or slow any
link. atp processes are real ``atp worker``, ``atp scheduler`` or ``atp dev`` processes
running ``chaos.app``; the runner talks to the same backends through its own proxy link.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chaos.ledger import LEDGER_ENV
from chaos.servers import (
    EtcdCluster,
    ServerProcess,
    free_port,
    start_etcd_cluster,
    start_server,
)
from chaos.toxiproxy import ToxiproxyClient

__all__ = ["AtpProcess", "Deployment", "Stack"]

REPO = Path(__file__).resolve().parents[1]
ETCD_MEMBERS = 3
"""etcd runs as a cluster, so a suite can stop a member and the rest keep a quorum."""
TIMINGS = {
    "ATP_LEASE": "3",
    "ATP_HEARTBEAT": "0.5",
    "ATP_LEADER_TTL": "2",
    "ATP_READY_TIMEOUT": "6",
    "ATP_REAP_INTERVAL": "0.5",
    "ATP_DRAIN_TIMEOUT": "5",
    "ATP_CONCURRENCY": "16",
    "ATP_MAX_ATTEMPTS": "20",
    "ATP_RETRY_BASE": "0.2",
    "ATP_RETRY_CAP": "2",
}
"""Short leases, so a run sees many failovers in a minute; generous attempts, so a task
retried across faults is never dead by bad luck (only ``chaos.doomed`` may be)."""


@dataclass(frozen=True)
class Stack:
    """Which backend serves each port; ``dev`` runs everything in one ``atp dev`` process."""

    name: str
    transport: str
    store: str
    coordinator: str
    workers: int = 2
    schedulers: int = 3

    @property
    def dev(self) -> bool:
        return self.transport == "memory"

    @property
    def servers(self) -> list[str]:
        wanted = {self.transport, self.store, self.coordinator} & {"redis", "nats", "etcd"}
        return sorted(wanted)


@dataclass
class AtpProcess:
    """One atp process of the deployment, restartable under the same name."""

    name: str
    role: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.stopped = False

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signum)
            self.stopped = signum == signal.SIGSTOP

    def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def terminate(self, timeout: float = 15.0) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Deployment:
    """Servers, their proxies and atp processes for one stack, in ``folder``."""

    stack: Stack
    folder: Path
    toxiproxy_url: str | None = None
    """A running Toxiproxy to use; None: start ours as a process."""
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    """Server name -> the proxy address the atp processes use."""
    processes: list[AtpProcess] = field(default_factory=list)
    toxi: ToxiproxyClient | None = None
    etcd: EtcdCluster | None = None
    """The etcd cluster, when the stack coordinates on etcd; its members are in
    ``servers`` as ``etcd-0``, ``etcd-1``, ..."""
    _proxy_process: subprocess.Popen[bytes] | None = None

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger"

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ledger.mkdir(exist_ok=True)
        for name in self.stack.servers:
            if name == "etcd":
                self.etcd = await asyncio.to_thread(start_etcd_cluster, self.folder, ETCD_MEMBERS)
                self.servers.update({f"etcd-{n}": m for n, m in enumerate(self.etcd.members)})
            else:
                self.servers[name] = await asyncio.to_thread(self._start_server, name)
        self.toxi = await self._start_proxy()
        for name, server in self.servers.items():
            created = await self.toxi.create_proxy(name, f"127.0.0.1:{server.port}")
            self.addresses[name] = created["listen"]
        for process in self._plan():
            self.processes.append(process)
            process.start()

    def _start_server(self, name: str) -> ServerProcess:
        # Redis keeps every write on disk, as an operator who wants nothing lost must.
        args = ("--appendonly", "yes", "--appendfsync", "always") if name == "redis" else ()
        return start_server(name, self.folder, *args)

    async def _start_proxy(self) -> ToxiproxyClient:
        url = self.toxiproxy_url
        if url is None:
            port = free_port()
            command = [sys.executable, "-m", "chaos.toxiproxy", "--port", str(port)]
            self._proxy_process = await asyncio.to_thread(self._spawn, command, "toxiproxy")
            url = f"http://127.0.0.1:{port}"
        client = ToxiproxyClient(url)
        for _ in range(200):
            with contextlib.suppress(Exception):
                await client.version()
                await client.reset()
                return client
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no Toxiproxy API answered at {url}")

    def _spawn(self, command: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("ab") as log:
            return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def env(self) -> dict[str, str]:
        """The environment of every atp process: the stack's URLs through the proxies."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
        urls = {
            "ATP_TRANSPORT": self._url(self.stack.transport),
            "ATP_STORE": self._url(self.stack.store),
            "ATP_COORDINATOR": self._url(self.stack.coordinator),
        }
        path = os.pathsep.join(filter(None, [str(REPO), clean.get("PYTHONPATH")]))
        return {**clean, **TIMINGS, **urls, LEDGER_ENV: str(self.ledger), "PYTHONPATH": path}

    def _url(self, backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.folder / 'atp.db'}"
        if backend == "local":
            return f"local:///{self.folder / 'atp.db'}"
        if backend == "memory":
            return "memory://"
        if backend == "etcd":  # every member, each through its own proxy
            members = sorted(name for name in self.addresses if name.startswith("etcd-"))
            return "etcd://" + ",".join(self.addresses[name] for name in members)
        scheme = {"redis": "redis://{}/0", "nats": "nats://{}"}[backend]
        return scheme.format(self.addresses[backend])

    def _plan(self) -> Iterator[AtpProcess]:
        cli = [sys.executable, "-m", "atp.adapters.cli"]
        env = self.env()
        if self.stack.dev:
            yield self._process("dev-0", "dev", [*cli, "dev", "chaos.app:app"], env)
            return
        for n in range(self.stack.schedulers):
            yield self._process(f"scheduler-{n}", "scheduler", [*cli, "scheduler"], env)
        for n in range(self.stack.workers):
            yield self._process(f"worker-{n}", "worker", [*cli, "worker", "chaos.app:app"], env)

    def _process(self, name: str, role: str, argv: list[str], env: dict[str, str]) -> AtpProcess:
        return AtpProcess(name, role, argv, env, self.folder / f"{name}.log")

    def by_role(self, role: str) -> list[AtpProcess]:
        """Processes that run ``role``; ``atp dev`` runs every role."""
        return [p for p in self.processes if p.role in (role, "dev")]

    def by_pid(self, pid: int) -> AtpProcess | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def logs(self, role: str) -> str:
        return "".join(
            p.log.read_text(errors="replace") for p in self.by_role(role) if p.log.exists()
        )

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(p.terminate) for p in self.processes))
        if self.toxi is not None:
            with contextlib.suppress(Exception):
                for name in self.addresses:
                    await self.toxi.delete_proxy(name)
            await self.toxi.close()
        if self._proxy_process is not None:
            self._proxy_process.terminate()
            await asyncio.to_thread(self._proxy_process.wait, 10)
        for server in self.servers.values():
            await asyncio.to_thread(server.close)
