"""The Toxiproxy-compatible proxy: its HTTP API, and each toxic on real loopback sockets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from chaos.toxiproxy import Registry, ToxiproxyClient, ToxiproxyError, make_app
from tests.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """An upstream that echoes what it reads and closes when its client does."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


@pytest.fixture
async def toxi() -> AsyncIterator[ToxiproxyClient]:
    """Our server on this loop, driven through the same client a real toxiproxy gets."""
    registry = Registry()
    transport = httpx.ASGITransport(app=make_app(registry))
    client = ToxiproxyClient("http://toxiproxy", transport=transport)
    yield client
    await client.close()
    await registry.close()


async def _proxy(toxi: ToxiproxyClient, upstream: str, name: str = "svc") -> tuple[str, int]:
    host, port = (await toxi.create_proxy(name, upstream))["listen"].split(":")
    return host, int(port)


async def _connect(address: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*address)


async def _roundtrip(address: tuple[str, int], data: bytes) -> tuple[bytes, float]:
    reader, writer = await _connect(address)
    started = time.monotonic()
    writer.write(data)
    received = await asyncio.wait_for(reader.readexactly(len(data)), 10)
    elapsed = time.monotonic() - started
    writer.close()
    return received, elapsed


# -- API -----------------------------------------------------------------------------------


async def test_proxy_crud_follows_toxiproxys_status_codes_and_shapes(
    toxi: ToxiproxyClient, echo: str
) -> None:
    created = await toxi.create_proxy("redis", echo)
    assert created["enabled"] is True
    assert created["toxics"] == []
    assert created["listen"].rsplit(":", 1)[1] != "0"
    with pytest.raises(ToxiproxyError) as exists:
        await toxi.create_proxy("redis", echo)
    assert exists.value.status == 409
    listing = await toxi.proxies()
    assert isinstance(listing, dict)
    assert listing["redis"]["upstream"] == echo
    await toxi.delete_proxy("redis")
    with pytest.raises(ToxiproxyError) as missing:
        await toxi.proxy("redis")
    assert missing.value.status == 404
    assert await toxi.version()


async def test_raw_http_codes_error_bodies_and_browser_refusal(echo: str) -> None:
    registry = Registry()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app(registry)), base_url="http://t"
    ) as http:
        assert (await http.post("/proxies", json={"upstream": echo})).json() == {
            "error": "missing required field: name",
            "status": 400,
        }
        assert (await http.post("/proxies", content=b"{nope")).status_code == 400
        assert (
            await http.post("/proxies", json={"name": "p", "upstream": echo})
        ).status_code == 201
        toxic = await http.post("/proxies/p/toxics", json={"type": "latency"})
        assert toxic.status_code == 200
        assert toxic.json() == {
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 0, "jitter": 0},
        }
        assert isinstance((await http.get("/proxies/p/toxics")).json(), list)
        assert (await http.post("/proxies/p/toxics", json={"type": "nope"})).json()["error"] == (
            "invalid toxic type"
        )
        bad_stream = await http.post("/proxies/p/toxics", json={"type": "timeout", "stream": "x"})
        assert bad_stream.status_code == 400
        browser = await http.get("/proxies", headers={"User-Agent": "Mozilla/5.0"})
        assert browser.status_code == 403
        assert (await http.delete("/proxies/p/toxics/latency_downstream")).status_code == 204
        assert (await http.post("/reset")).status_code == 204
        assert (await http.get("/proxies/nope/toxics/x")).json()["status"] == 404
    await registry.close()


async def test_toxic_update_merges_attributes_and_reset_clears_everything(
    toxi: ToxiproxyClient, echo: str
) -> None:
    await _proxy(toxi, echo)
    await toxi.add_toxic("svc", "latency", latency=100, jitter=10)
    updated = await toxi.update_toxic("svc", "latency_downstream", latency=5)
    assert updated["attributes"] == {"latency": 5, "jitter": 10}
    with pytest.raises(ToxiproxyError) as twice:
        await toxi.add_toxic("svc", "latency")
    assert twice.value.status == 409
    with pytest.raises(ToxiproxyError) as negative:
        await toxi.add_toxic("svc", "bandwidth", rate=-1)
    assert negative.value.status == 400
    await toxi.set_enabled("svc", False)
    await toxi.reset()
    proxy = await toxi.proxy("svc")
    assert proxy["enabled"] is True
    assert proxy["toxics"] == []


async def test_populate_creates_then_is_idempotent(toxi: ToxiproxyClient, echo: str) -> None:
    body = [{"name": "a", "upstream": echo}, {"name": "b", "upstream": echo}]
    first = await toxi._call("POST", "/populate", json=body)
    second = await toxi._call("POST", "/populate", json=body)
    assert [p["listen"] for p in first["proxies"]] == [p["listen"] for p in second["proxies"]]


# -- toxics --------------------------------------------------------------------------------


async def test_a_clean_proxy_forwards_both_ways(toxi: ToxiproxyClient, echo: str) -> None:
    received, _ = await _roundtrip(await _proxy(toxi, echo), b"x" * 200_000)
    assert received == b"x" * 200_000


async def test_latency_delays_each_direction(toxi: ToxiproxyClient, echo: str) -> None:
    address = await _proxy(toxi, echo)
    await toxi.add_toxic("svc", "latency", latency=150)
    await toxi.add_toxic("svc", "latency", "upstream", latency=150)
    received, elapsed = await _roundtrip(address, b"ping")
    assert received == b"ping"
    assert elapsed >= 0.29


async def test_bandwidth_throttles(toxi: ToxiproxyClient, echo: str) -> None:
    address = await _proxy(toxi, echo)
    await toxi.add_toxic("svc", "bandwidth", rate=20)  # 20 KB/s
    received, elapsed = await _roundtrip(address, b"y" * 10_000)
    assert received == b"y" * 10_000
    assert elapsed >= 0.45


async def test_slicer_keeps_the_bytes_intact(toxi: ToxiproxyClient, echo: str) -> None:
    address = await _proxy(toxi, echo)
    await toxi.add_toxic("svc", "slicer", average_size=7, size_variation=3, delay=10)
    data = bytes(range(256)) * 20
    received, _ = await _roundtrip(address, data)
    assert received == data


async def test_timeout_zero_holds_the_link_silent_until_removed(
    toxi: ToxiproxyClient, echo: str
) -> None:
    reader, writer = await _connect(await _proxy(toxi, echo))
    await toxi.add_toxic("svc", "timeout", timeout=0)
    writer.write(b"lost")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(10), 0.3)
    await toxi.remove_toxic("svc", "timeout_downstream")
    writer.write(b"back")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"back"
    writer.close()


async def test_timeout_closes_the_link_after_its_time(toxi: ToxiproxyClient, echo: str) -> None:
    reader, writer = await _connect(await _proxy(toxi, echo))
    await toxi.add_toxic("svc", "timeout", "upstream", timeout=100)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(10), 5) == b""
    assert time.monotonic() - started >= 0.09
    writer.close()


async def test_reset_peer_sends_a_reset(toxi: ToxiproxyClient, echo: str) -> None:
    reader, writer = await _connect(await _proxy(toxi, echo))
    await toxi.add_toxic("svc", "reset_peer", "upstream", timeout=0)
    writer.write(b"boom")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), 5)
    writer.close()


async def test_limit_data_passes_exactly_that_many_bytes(toxi: ToxiproxyClient, echo: str) -> None:
    reader, writer = await _connect(await _proxy(toxi, echo))
    await toxi.add_toxic("svc", "limit_data", bytes=10)
    writer.write(b"0123456789abcdef")
    assert await asyncio.wait_for(reader.read(), 5) == b"0123456789"
    writer.close()


async def test_slow_close_delays_the_close(toxi: ToxiproxyClient, echo: str) -> None:
    reader, writer = await _connect(await _proxy(toxi, echo))
    await toxi.add_toxic("svc", "slow_close", "upstream", delay=200)
    started = time.monotonic()
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert time.monotonic() - started >= 0.19
    writer.close()


async def test_toxicity_zero_leaves_the_link_alone(toxi: ToxiproxyClient, echo: str) -> None:
    address = await _proxy(toxi, echo)
    await toxi.add_toxic("svc", "timeout", timeout=0, toxicity=0.0)
    received, _ = await _roundtrip(address, b"through")
    assert received == b"through"


async def test_disabling_cuts_live_links_and_refuses_new_ones(
    toxi: ToxiproxyClient, echo: str
) -> None:
    address = await _proxy(toxi, echo)
    reader, writer = await _connect(address)
    await toxi.set_enabled("svc", False)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    with pytest.raises(ConnectionRefusedError):
        await _connect(address)
    writer.close()
    await toxi.set_enabled("svc", True)
    received, _ = await _roundtrip(address, b"up again")
    assert received == b"up again"


async def test_the_module_serves_the_api_as_a_process(echo: str) -> None:
    port = free_port()
    command = [sys.executable, "-m", "chaos.toxiproxy", "--port", str(port)]
    server = await asyncio.to_thread(subprocess.Popen, command)
    try:
        async with ToxiproxyClient(f"http://127.0.0.1:{port}") as toxi:
            for _ in range(100):
                try:
                    await toxi.version()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            received, _ = await _roundtrip(await _proxy(toxi, echo), b"via a process")
            assert received == b"via a process"
    finally:
        server.terminate()
        server.wait(10)
