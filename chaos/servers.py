"""Private servers on free ports: Redis, NATS, etcd (one member or a cluster), MariaDB,
PostgreSQL, each killable, pausable and restartable on the same port and data.

The chaos suites deploy them, and the integration tests start them through
``tests/services.py``. The methods block; async code calls them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HOST",
    "URLS",
    "EtcdCluster",
    "Probe",
    "ServerMissing",
    "ServerProcess",
    "ServerStartError",
    "ServiceUnavailable",
    "etcd_ready",
    "exchange",
    "free_port",
    "mysql_ready",
    "nats_ready",
    "postgres_ready",
    "redis_ready",
    "start_etcd",
    "start_etcd_cluster",
    "start_mariadb",
    "start_nats",
    "start_postgres",
    "start_redis",
    "start_server",
]

HOST = "127.0.0.1"
URLS = {
    "redis": "redis://{host}:{port}/0",
    "nats": "nats://{host}:{port}",
    "etcd": "etcd://{host}:{port}",
    "mysql": "mysql+asyncmy://root@{host}:{port}/test",
    "postgres": "postgresql+asyncpg://postgres@{host}:{port}/test",
}
"""The URL of each service, as the atp plugins for it read it."""
Probe = Callable[[str, int], bool]


class ServiceUnavailable(Exception):
    """No way to get a service worked; ``reasons`` says what was tried."""

    def __init__(self, service: str, reasons: Sequence[str]) -> None:
        super().__init__(f"{service} is not available: " + "; ".join(reasons))
        self.service = service
        self.reasons = list(reasons)


class ServerMissing(ServiceUnavailable):
    """The server's binary is not installed."""


class ServerStartError(Exception):
    """A server was started but did not become ready; the message ends with its log."""

    def __init__(self, message: str, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


# -- probes: is the server ready? ----------------------------------------------------------


def exchange(host: str, port: int, send: bytes, until: bytes, limit: int = 4096) -> bytes:
    """Send ``send`` (if any), read until ``until`` shows up or ``limit`` bytes came."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            if send:
                sock.sendall(send)
            data = b""
            while chunk := sock.recv(limit):
                data += chunk
                if until in data or len(data) >= limit:
                    break
            return data
    except OSError:
        return b""


def redis_ready(host: str, port: int) -> bool:
    """PING answers PONG (not LOADING)."""
    return exchange(host, port, b"PING\r\n", b"\r\n").startswith(b"+PONG")


def nats_ready(host: str, port: int) -> bool:
    """The INFO line announces JetStream and a PING after CONNECT gets its PONG."""
    hello = b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n'
    data = exchange(host, port, hello, b"PONG\r\n")
    return data.startswith(b"INFO ") and b'"jetstream":true' in data and b"PONG\r\n" in data


def etcd_ready(host: str, port: int) -> bool:
    """GET /health reports healthy."""
    request = f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    data = exchange(host, port, request.encode(), b"}")
    return data.startswith(b"HTTP/1.1 200") and b'"health":"true"' in data


def mysql_ready(host: str, port: int) -> bool:
    """The server greets with a protocol-10 handshake (an error packet is 0xff)."""
    data = exchange(host, port, b"", b"\x00", limit=5)
    return len(data) >= 5 and data[4] == 10


def postgres_ready(host: str, port: int, user: str = "postgres") -> bool:
    """A startup message is answered by an authentication request, not an error."""
    body = struct.pack("!i", 196608) + b"user\x00" + user.encode() + b"\x00\x00"
    data = exchange(host, port, struct.pack("!i", len(body) + 4) + body, b"", limit=1)
    return data[:1] == b"R"


# -- private server processes --------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A server this test session started, on a fixed port, with its log in ``workdir``."""

    name: str
    argv: list[str]
    port: int
    url: str
    workdir: Path
    probe: Probe
    ready_timeout: float = 20.0
    stop_signal: int = signal.SIGTERM
    user: str | None = None
    after_start: Callable[[ServerProcess], None] | None = None
    owned: list[Path] = field(default_factory=list)
    """Folders deleted by ``close``."""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _paused: bool = False

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> ServerProcess:
        """Start the server and wait until it answers; raise ServerStartError otherwise."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                user=self.user,
            )
        self._paused = False
        self._wait_ready()
        if self.after_start:
            self.after_start(self)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down cleanly; kill it if it does not stop within ``timeout``."""
        if not self.running:
            return
        self.resume()
        assert self._process is not None
        self._process.send_signal(self.stop_signal)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and everything it forked, like a power cut of the process."""
        if self.running:
            self._signal_group(signal.SIGKILL)
            assert self._process is not None
            self._process.wait()
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing answers."""
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self._paused:
            self._signal_group(signal.SIGCONT)
            self._paused = False

    def restart(self) -> ServerProcess:
        """Stop the server if it runs, then start it again on the same port and data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and delete the folders it owns."""
        self.stop()
        for folder in self.owned:
            shutil.rmtree(folder, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _signal_group(self, signum: int) -> None:
        if self.running:
            assert self._process is not None
            os.killpg(self._process.pid, signum)  # its own session: only what it forked

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise self._failure(f"exited with status {self._process.returncode}", True)
            if self.probe(HOST, self.port):
                return
            time.sleep(0.05)
        self.kill()
        raise self._failure(f"did not answer within {self.ready_timeout:g} s", False)

    def _failure(self, what: str, exited: bool) -> ServerStartError:
        command = " ".join(self.argv)
        message = f"{self.name} on port {self.port} {what}\n$ {command}\n{self.log_tail()}"
        return ServerStartError(message, exited)


def _binary(name: str, *alternatives: str) -> str:
    for candidate in (name, *alternatives):
        found = shutil.which(candidate)
        if found:
            return found
    raise ServerMissing(name, [f"{name} is not on the PATH"])


def _launch(build: Callable[[], ServerProcess], attempts: int = 3) -> ServerProcess:
    """Start what ``build`` makes; on an early exit (a port taken meanwhile) try new ports."""
    for attempt in range(attempts):
        server = build()
        try:
            return server.start()
        except ServerStartError as exc:
            server.close()
            if not exc.exited or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _folder(parent: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))


def start_redis(folder: Path, *args: str) -> ServerProcess:
    """Start a private redis-server without persistence (add ``--appendonly yes`` for it)."""
    binary = _binary("redis-server")

    def build() -> ServerProcess:
        workdir, port = _folder(folder, "redis"), free_port()
        config = workdir / "redis.conf"
        config.write_text(_REDIS_CONFIG.format(port=port, host=HOST, dir=workdir))
        url = URLS["redis"].format(host=HOST, port=port)
        return ServerProcess("redis", [binary, str(config), *args], port, url, workdir, redis_ready)

    return _launch(build)


_REDIS_CONFIG = """\
port {port}
bind {host}
dir {dir}
save ""
appendonly no
protected-mode no
"""


def start_nats(folder: Path, *args: str) -> ServerProcess:
    """Start a private nats-server with JetStream, storing in its folder."""
    binary = _binary("nats-server")

    def build() -> ServerProcess:
        workdir, port = _folder(folder, "nats"), free_port()
        argv = [binary, "-a", HOST, "-p", str(port), "-js", "-sd", str(workdir / "js"), *args]
        url = URLS["nats"].format(host=HOST, port=port)
        return ServerProcess("nats", argv, port, url, workdir, nats_ready)

    return _launch(build)


def start_etcd(folder: Path, *args: str) -> ServerProcess:
    """Start a private single-member etcd (Debian package ``etcd-server``)."""
    binary = _binary("etcd")

    def build() -> ServerProcess:
        workdir, port, peer = _folder(folder, "etcd"), free_port(), free_port()
        client, peers = f"http://{HOST}:{port}", f"http://{HOST}:{peer}"
        flags = {
            "name": "atp-test",
            "data-dir": workdir / "data",
            "log-level": "warn",
            "listen-client-urls": client,
            "advertise-client-urls": client,
            "listen-peer-urls": peers,
            "initial-advertise-peer-urls": peers,
            "initial-cluster": f"atp-test={peers}",
        }
        argv = [binary, *_flags(flags), *args]
        url = URLS["etcd"].format(host=HOST, port=port)
        return ServerProcess("etcd", argv, port, url, workdir, etcd_ready, ready_timeout=30)

    return _launch(build)


_MARIADB_INIT = """\
CREATE DATABASE IF NOT EXISTS test;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
"""


def start_mariadb(folder: Path, *args: str) -> ServerProcess:
    """Start a private MariaDB with a passwordless root and a ``test`` database."""
    binary = _binary("mariadbd", "mysqld")
    installer = _binary("mariadb-install-db", "mysql_install_db")
    as_root = ["--user=root"] if os.geteuid() == 0 else []

    def build() -> ServerProcess:
        workdir, port = _folder(folder, "mariadb"), free_port()
        data, init = workdir / "data", workdir / "init.sql"
        init.write_text(_MARIADB_INIT)
        install = {"datadir": data, "auth-root-authentication-method": "normal"}
        _run_setup("mariadb", workdir, [installer, "--no-defaults", *_flags(install), *as_root])
        flags = {
            "datadir": data,
            "port": port,
            "bind-address": HOST,
            "init-file": init,
            "socket": workdir / "mysqld.sock",
            "pid-file": workdir / "mysqld.pid",
            "innodb-buffer-pool-size": "32M",
        }
        argv = [binary, "--no-defaults", *_flags(flags), "--skip-name-resolve", *as_root, *args]
        url = URLS["mysql"].format(host=HOST, port=port)
        return ServerProcess("mariadb", argv, port, url, workdir, mysql_ready, ready_timeout=60)

    return _launch(build)


def start_postgres(folder: Path, *args: str) -> ServerProcess:
    """Start a private PostgreSQL (trust auth, user ``postgres``) with a ``test`` database.

    PostgreSQL refuses to run as root: as root it runs as the ``postgres`` user, in a
    folder under the system temp dir that this user can reach.
    """
    bindir = Path(_binary("postgres")).resolve().parent
    user = "postgres" if os.geteuid() == 0 else None

    def build() -> ServerProcess:
        port = free_port()
        workdir = _folder(Path(tempfile.gettempdir()) if user else folder, "postgres")
        if user:
            entry = pwd.getpwnam(user)
            os.chown(workdir, entry.pw_uid, entry.pw_gid)
        data = workdir / "data"
        init = {"pgdata": data, "username": "postgres", "auth": "trust", "encoding": "UTF8"}
        _run_setup("postgres", workdir, [str(bindir / "initdb"), *_flags(init), "--no-sync"], user)
        settings = ["-c", f"listen_addresses={HOST}", "-c", "fsync=off"]
        argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(workdir)]
        createdb = [str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", "postgres"]
        return ServerProcess(
            "postgres",
            [*argv, *settings, *args],
            port,
            URLS["postgres"].format(host=HOST, port=port),
            workdir,
            postgres_ready,
            ready_timeout=30,
            stop_signal=signal.SIGINT,
            user=user,
            after_start=lambda server: _create_test_db(createdb),
            owned=[workdir] if user else [],
        )

    return _launch(build)


def _flags(flags: Mapping[str, object]) -> list[str]:
    """``{"data-dir": path}`` -> ``["--data-dir=path"]``."""
    return [f"--{name}={value}" for name, value in flags.items()]


def _create_test_db(createdb: list[str]) -> None:
    done = subprocess.run([*createdb, "test"], capture_output=True, text=True, check=False)
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise ServerStartError(f"createdb failed: {done.stderr.strip()}", False)


def _run_setup(name: str, workdir: Path, argv: list[str], user: str | None = None) -> None:
    """Run a one-off setup command (initdb and the like), raising with its output."""
    done = subprocess.run(
        argv, cwd=workdir, capture_output=True, text=True, timeout=120, user=user, check=False
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise ServerStartError(
            f"{name} setup failed: {' '.join(argv)}\n" + "\n".join(output), False
        )


STARTERS: dict[str, Callable[..., ServerProcess]] = {
    "redis": start_redis,
    "nats": start_nats,
    "etcd": start_etcd,
    "mysql": start_mariadb,
    "postgres": start_postgres,
}


def start_server(name: str, folder: Path, *args: str) -> ServerProcess:
    """Start a private server of service ``name``; ServerMissing if it is not installed."""
    return STARTERS[name](folder, *args)


# -- an etcd cluster -----------------------------------------------------------------------


@dataclass
class EtcdCluster:
    """A private etcd cluster on loopback; each member is a ServerProcess of its own."""

    members: Sequence[ServerProcess]

    @property
    def url(self) -> str:
        """``etcd://`` naming every member, in order."""
        return self.url_of(*range(len(self.members)))

    def url_of(self, *indexes: int) -> str:
        """``etcd://`` naming the members at ``indexes``, in that order."""
        return "etcd://" + ",".join(f"{HOST}:{self.members[i].port}" for i in indexes)

    def leader(self) -> int:
        """The index of the member that etcd's raft elected leader, asked over HTTP."""
        running = [(i, _etcd_status(m.port)) for i, m in enumerate(self.members) if m.running]
        ids = {status["header"]["member_id"]: i for i, status in running}
        return ids[running[0][1]["leader"]]

    def close(self) -> None:
        """Stop every member and delete what it owns."""
        for member in self.members:
            member.close()

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_etcd_cluster(folder: Path, size: int = 3, attempts: int = 3) -> EtcdCluster:
    """Start an etcd cluster of ``size`` members on free loopback ports.

    The members start together: none answers healthy before a quorum runs. Afterwards each
    can be stopped, killed or restarted alone (its data stays in its folder).
    """
    binary = _binary("etcd")
    for attempt in range(attempts):
        members = _etcd_members(binary, _folder(folder, "etcd-cluster"), size)
        threads = [threading.Thread(target=_start_quietly, args=(m,)) for m in members]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failed = [m.error for m in members if m.error is not None]
        if not failed:
            return EtcdCluster(members)
        for member in members:
            member.close()
        exited = all(isinstance(exc, ServerStartError) and exc.exited for exc in failed)
        if attempt == attempts - 1 or not exited:  # only a port taken meanwhile is retried
            raise failed[0]
    raise AssertionError("unreachable")


def _etcd_status(port: int) -> Any:
    """A member's ``/v3/maintenance/status`` through etcd's JSON gateway."""
    url = f"http://{HOST}:{port}/v3/maintenance/status"
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.load(reply)


@dataclass
class _EtcdMember(ServerProcess):
    error: Exception | None = None
    """Why ``start`` failed in its thread, for the caller to raise."""


def _start_quietly(member: _EtcdMember) -> None:
    try:
        member.start()
    except Exception as exc:
        member.error = exc


def _etcd_members(binary: str, workdir: Path, size: int) -> list[_EtcdMember]:
    ports = [(free_port(), free_port()) for _ in range(size)]
    peers = {f"m{i}": f"http://{HOST}:{peer}" for i, (_, peer) in enumerate(ports)}
    cluster = ",".join(f"{name}={url}" for name, url in peers.items())
    members = []
    for (name, peer_url), (port, _) in zip(peers.items(), ports, strict=True):
        client = f"http://{HOST}:{port}"
        flags = {
            "name": name,
            "data-dir": workdir / name,
            "log-level": "warn",
            "listen-client-urls": client,
            "advertise-client-urls": client,
            "listen-peer-urls": peer_url,
            "initial-advertise-peer-urls": peer_url,
            "initial-cluster": cluster,
            "initial-cluster-state": "new",
            "initial-cluster-token": workdir.name,
        }
        url = URLS["etcd"].format(host=HOST, port=port)
        argv = [binary, *_flags(flags)]
        member = _EtcdMember(f"etcd-{name}", argv, port, url, workdir, etcd_ready, ready_timeout=30)
        members.append(member)
    return members
