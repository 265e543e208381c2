"""The test infrastructure itself: private servers, session services, skip or fail."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import services
from tests.services import Container, ServerProcess, Service, Services

StartServer = Callable[..., ServerProcess]
Docker = Callable[[Mapping[str, str]], bool]


def talk(port: int, send: bytes, timeout: float = 2.0) -> bytes:
    """Send ``send`` to 127.0.0.1:``port`` and return the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if send:
            sock.sendall(send)
        return sock.recv(4096)


def refused(port: int) -> bool:
    try:
        talk(port, b"")
    except ConnectionRefusedError:
        return True
    return False


# -- private servers -----------------------------------------------------------------------


def test_private_redis_answers_ping_and_dies_when_killed(private_server: StartServer) -> None:
    redis = private_server("redis")
    assert urlsplit(redis.url).port == redis.port
    assert talk(redis.port, b"PING\r\n") == b"+PONG\r\n"
    redis.kill()
    assert not redis.running
    assert refused(redis.port)


def test_private_redis_restarts_on_the_same_port(private_server: StartServer) -> None:
    redis = private_server("redis")
    port, pid = redis.port, redis.pid
    redis.kill()
    redis.restart()
    assert (redis.port, redis.running) == (port, True)
    assert redis.pid != pid
    assert talk(port, b"PING\r\n") == b"+PONG\r\n"
    redis.stop()
    assert refused(port)


def test_a_paused_server_holds_connections_but_does_not_answer(
    private_server: StartServer,
) -> None:
    redis = private_server("redis")
    redis.pause()
    with pytest.raises(TimeoutError):
        talk(redis.port, b"PING\r\n", timeout=0.3)
    redis.resume()
    assert talk(redis.port, b"PING\r\n") == b"+PONG\r\n"


def test_extra_arguments_reach_the_server(private_server: StartServer) -> None:
    redis = private_server("redis", "--appendonly", "yes")
    answer = talk(redis.port, b"CONFIG GET appendonly\r\n")
    assert answer.endswith(b"$3\r\nyes\r\n")


def test_private_nats_greets_with_jetstream_and_pongs(private_server: StartServer) -> None:
    nats = private_server("nats")
    with socket.create_connection(("127.0.0.1", nats.port), timeout=2.0) as sock:
        info = sock.recv(4096)
        sock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        pong = sock.recv(4096)
    assert info.startswith(b"INFO {")
    assert b'"jetstream":true' in info
    assert pong == b"PONG\r\n"
    nats.kill()
    assert refused(nats.port)


@pytest.mark.parametrize("name", ["etcd", "mysql", "postgres"])
def test_private_server_of_each_kind_answers_and_stops(
    private_server: StartServer, name: str
) -> None:
    server = private_server(name)
    assert server.probe("127.0.0.1", server.port)
    server.kill()
    assert not server.probe("127.0.0.1", server.port)


def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    with pytest.raises(services.ServerStartError) as failure:
        services.start_redis(tmp_path, "--no-such-directive", "yes")
    assert failure.value.exited
    assert "no-such-directive" in str(failure.value)
    assert "redis-server" in str(failure.value)


def test_a_server_that_never_answers_is_killed_after_its_timeout(tmp_path: Path) -> None:
    server = ServerProcess(
        "sleeper",
        ["sleep", "30"],
        services.free_port(),
        "none://",
        tmp_path,
        probe=lambda host, port: False,
        ready_timeout=0.3,
    )
    with pytest.raises(services.ServerStartError, match="did not answer within"):
        server.start()
    assert not server.running


# -- session services ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["redis", "nats", "etcd", "mysql", "postgres"])
def test_session_service_urls_answer(request: pytest.FixtureRequest, name: str) -> None:
    url = request.getfixturevalue(f"{name}_url")
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    assert services.SERVICES[name].probe(parts.hostname, parts.port)


def fake_service(
    start: Callable[..., ServerProcess] | None = None,
    probe: Callable[[str, int], bool] = lambda host, port: False,
    shared_port: int | None = None,
) -> Service:
    def missing(folder: Path, *args: str) -> ServerProcess:
        raise services.ServerMissing("redis", ["redis-server is not on the PATH"])

    return Service("redis", start or missing, probe, Container("redis:7", 6379), shared_port)


def no_docker(env: Mapping[str, str]) -> bool:
    return False


def registry(
    tmp_path: Path, env: dict[str, str], service: Service, docker: Docker = no_docker
) -> Services:
    return Services(tmp_path, env=env, docker=docker, services={"redis": service})


def test_a_url_in_the_environment_is_taken_as_it_is(tmp_path: Path) -> None:
    def must_not_start(folder: Path, *args: str) -> ServerProcess:
        raise AssertionError("started a server although a URL was given")

    env = {"ATP_TEST_REDIS_URL": "redis://elsewhere:7000/3"}
    found = registry(tmp_path, env, fake_service(must_not_start))
    assert found.require("redis") == "redis://elsewhere:7000/3"


def test_a_missing_service_skips_the_test_locally(tmp_path: Path) -> None:
    found = registry(tmp_path, {}, fake_service())
    with pytest.raises(pytest.skip.Exception) as skipped:
        found.require("redis")
    message = str(skipped.value)
    assert "ATP_TEST_REDIS_URL is not set" in message
    assert "redis-server is not on the PATH" in message
    assert "no Docker engine answers" in message


@pytest.mark.parametrize("ci", ["true", "TRUE", "1", "yes"])
def test_a_missing_service_fails_the_test_under_ci(tmp_path: Path, ci: str) -> None:
    found = registry(tmp_path, {"CI": ci}, fake_service())
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        found.require("redis")


@pytest.mark.parametrize("ci", ["", "false", "0", "no"])
def test_only_a_true_ci_variable_turns_skips_into_failures(ci: str) -> None:
    assert not services.must_fail({"CI": ci})


def test_a_server_that_fails_to_start_is_named_in_the_reason(tmp_path: Path) -> None:
    def broken(folder: Path, *args: str) -> ServerProcess:
        raise services.ServerStartError("redis on port 1 exited\nFATAL bad config", True)

    found = registry(tmp_path, {}, fake_service(broken))
    with pytest.raises(pytest.skip.Exception, match="FATAL bad config"):
        found.require("redis")


def test_an_answering_shared_server_is_used(tmp_path: Path) -> None:
    service = fake_service(probe=lambda host, port: port == 6379, shared_port=6379)
    found = registry(tmp_path, {}, service)
    assert found.url("redis") == "redis://127.0.0.1:6379/0"


def test_a_container_is_used_when_no_binary_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[bool] = []

    def start_container(spec: Container, probe: object, url: str) -> tuple[str, Callable[[], None]]:
        assert spec.image == "redis:7"
        return url.format(host="docker-host", port=49153), lambda: stopped.append(True)

    monkeypatch.setattr(services, "start_container", start_container)
    found = registry(tmp_path, {}, fake_service(), docker=lambda env: True)
    assert found.url("redis") == "redis://docker-host:49153/0"
    found.close()
    assert stopped == [True]


def test_without_testcontainers_the_container_path_gives_a_reason(tmp_path: Path) -> None:
    found = registry(tmp_path, {}, fake_service(), docker=lambda env: True)
    with pytest.raises(services.ServiceUnavailable) as unavailable:
        found.url("redis")
    assert any("testcontainers" in reason for reason in unavailable.value.reasons)


def test_an_outcome_is_decided_once_per_session(tmp_path: Path) -> None:
    calls: list[Path] = []

    def missing(folder: Path, *args: str) -> ServerProcess:
        calls.append(folder)
        raise services.ServerMissing("redis", ["not installed"])

    found = registry(tmp_path, {}, fake_service(missing))
    for _ in range(3):
        with pytest.raises(services.ServiceUnavailable):
            found.url("redis")
    assert len(calls) == 1


def test_closing_the_session_stops_the_servers_it_started(tmp_path: Path) -> None:
    service = Service("redis", services.start_redis, services.redis_ready, Container("x", 1))
    found = registry(tmp_path, {}, service)
    try:
        url = found.url("redis")
    except services.ServiceUnavailable as exc:
        pytest.skip(str(exc))
    port = urlsplit(url).port
    assert port is not None
    assert services.redis_ready("127.0.0.1", port)
    found.close()
    assert not services.redis_ready("127.0.0.1", port)


# -- docker detection ----------------------------------------------------------------------


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[Path]:
    """A unix socket that answers like a Docker engine's /_ping."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield path
    server.close()
    thread.join(timeout=2)


def test_docker_answers_when_an_engine_pings_back(fake_engine: Path) -> None:
    assert services.docker_answers({"DOCKER_HOST": f"unix://{fake_engine}"})


def test_docker_does_not_answer_without_an_engine(tmp_path: Path) -> None:
    assert not services.docker_answers({"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert not services.docker_answers({"DOCKER_HOST": f"tcp://127.0.0.1:{services.free_port()}"})
