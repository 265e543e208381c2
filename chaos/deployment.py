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

from chaos import faketime, netns, slowfsync
from chaos.disk import mount_tmpfs, unmount
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
API_SERVERS = 2
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


URLS = ("ATP_TRANSPORT", "ATP_STORE", "ATP_COORDINATOR")


def _via(url: str, host: str) -> str:
    """``url`` with the proxies' loopback address replaced by ``host``."""
    return url.replace("127.0.0.1:", f"{host}:")


@dataclass(frozen=True)
class Stack:
    """Which backend serves each port; ``dev`` runs everything in one ``atp dev`` process."""

    name: str
    transport: str
    store: str
    coordinator: str
    workers: int = 2
    schedulers: int = 3
    api: bool = False
    """Also run ``atp server`` processes: producers publish over REST, and gRPC
    consumers (``chaos.consumer``) work ``chaos.remote`` tasks."""

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
    held: bool = False
    """A fault keeps it down (killed, to be restarted by the fault): not an exit of its own."""

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
    clocks: bool = False
    """Every atp process runs on a clock a fault can move (chaos/faketime.py)."""
    disk: int = 0
    """Megabytes of a tmpfs mounted for the SQLite database, so a fault can fill it
    (chaos/disk.py); 0: the database lives in ``folder``."""
    slow_fsync: bool = False
    """Every atp process preloads the slow-fsync shim (chaos/slowfsync.py), so a fault
    can make its fsyncs wait."""
    partitions: bool = False
    """Every scheduler and worker runs in a network namespace of its own
    (chaos/netns.py), so a fault can drop its packets to chosen servers."""
    namespaces: dict[str, netns.Namespace] = field(default_factory=dict)
    """Process name -> its namespace, with ``partitions``."""
    held: set[str] = field(default_factory=set)
    """Servers a fault has down on purpose (by their name in ``servers``)."""
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    """Server name -> the proxy address the atp processes use."""
    processes: list[AtpProcess] = field(default_factory=list)
    toxi: ToxiproxyClient | None = None
    etcd: EtcdCluster | None = None
    """The etcd cluster, when the stack coordinates on etcd; its members are in
    ``servers`` as ``etcd-0``, ``etcd-1``, ..."""
    api_ports: list[tuple[int, int]] = field(default_factory=list)
    """(REST, gRPC) port of each ``atp server`` of an api stack."""
    _proxy_process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if self.stack.api:
            self.api_ports = [(free_port(), free_port()) for _ in range(API_SERVERS)]

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger"

    @property
    def fsync_shim(self) -> Path:
        return self.folder / slowfsync.LIBRARY

    @property
    def fsync_control(self) -> Path:
        """The file whose milliseconds every shimmed fsync waits."""
        return self.folder / "fsync-delay"

    @property
    def db_folder(self) -> Path:
        """Where the SQLite database lives: the small disk, when there is one."""
        return self.folder / "disk" if self.disk else self.folder

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ledger.mkdir(exist_ok=True)
        if self.disk:
            await asyncio.to_thread(mount_tmpfs, self.db_folder, self.disk)
        if self.slow_fsync:
            await asyncio.to_thread(slowfsync.build, self.folder)
        for name in self.stack.servers:
            if name == "etcd":
                self.etcd = await asyncio.to_thread(start_etcd_cluster, self.folder, ETCD_MEMBERS)
                self.servers.update({f"etcd-{n}": m for n, m in enumerate(self.etcd.members)})
            else:
                self.servers[name] = await asyncio.to_thread(self._start_server, name)
        self.toxi = await self._start_proxy()
        upstreams = {name: server.port for name, server in self.servers.items()}
        if self.stack.api:  # producers reach server-0 over REST, consumers server-1 over gRPC
            upstreams |= {"rest": self.api_ports[0][0], "grpc": self.api_ports[1][1]}
        # In namespaces, processes reach the proxies by the host side of their veth pair.
        listen = "0.0.0.0:0" if self.partitions else "127.0.0.1:0"
        for name, port in upstreams.items():
            created = await self.toxi.create_proxy(name, f"127.0.0.1:{port}", listen)
            self.addresses[name] = created["listen"].replace("0.0.0.0:", "127.0.0.1:")
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
            return f"sqlite:///{self.db_folder / 'atp.db'}"
        if backend == "local":
            return f"local:///{self.db_folder / 'atp.db'}"
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
            command = [*cli, "dev", "chaos.app:app", "--no-console"]  # no open port left behind
            yield self._process("dev-0", "dev", command, env)
            return
        for n in range(self.stack.schedulers):
            yield self._process(f"scheduler-{n}", "scheduler", [*cli, "scheduler"], env)
        for n in range(self.stack.workers):
            yield self._process(f"worker-{n}", "worker", [*cli, "worker", "chaos.app:app"], env)
        if self.stack.api:
            yield from self._api(cli, env)

    def _api(self, cli: list[str], env: dict[str, str]) -> Iterator[AtpProcess]:
        for n, (rest, grpc) in enumerate(self.api_ports):
            flags = ["--no-auth", "--host", "127.0.0.1", "--port", str(rest)]
            argv = [*cli, "server", *flags, "--grpc-port", str(grpc)]
            yield self._process(f"server-{n}", "server", argv, env)
        consumer = [sys.executable, "-m", "chaos.consumer", f"grpc://{self.addresses['grpc']}"]
        yield self._process("consumer-0", "consumer", consumer, env)

    @property
    def rest_url(self) -> str:
        """Where producers reach an ``atp server`` (through the proxy), on an api stack."""
        return f"http://{self.addresses['rest']}"

    def _process(self, name: str, role: str, argv: list[str], env: dict[str, str]) -> AtpProcess:
        if self.clocks:
            env = {**env, **faketime.environment(self.folder, name, env)}
        if self.slow_fsync:
            shim = slowfsync.environment(self.fsync_shim, self.fsync_control, env)
            env = {**env, **shim}
        if self.partitions and role in ("scheduler", "worker"):
            namespace = self.namespaces[name] = netns.create(len(self.namespaces))
            argv = namespace.wrap(argv)
            env = {k: _via(v, namespace.host_ip) if k in URLS else v for k, v in env.items()}
        return AtpProcess(name, role, argv, env, self.folder / f"{name}.log")

    def port(self, link: str) -> int:
        """The port the proxy of ``link`` listens on."""
        return int(self.addresses[link].rsplit(":", 1)[1])

    def links(self, server: str) -> list[str]:
        """The proxied links to ``server``: ``etcd`` names every member's; ``store``,
        ``transport`` and ``coordinator`` the stack's server for that port."""
        roles = {"store": self.stack.store, "transport": self.stack.transport}
        server = {**roles, "coordinator": self.stack.coordinator}.get(server, server)
        if server == "etcd":
            return sorted(name for name in self.addresses if name.startswith("etcd-"))
        if server not in self.addresses:
            raise KeyError(f"no link to {server!r} in stack {self.stack.name}")
        return [server]

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
        if self.disk:
            await asyncio.to_thread(unmount, self.db_folder)
        for namespace in self.namespaces.values():
            await asyncio.to_thread(netns.delete, namespace)
