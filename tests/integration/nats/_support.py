"""What the NATS tests share: URLs with a stream of their own, short leases, cleanup."""

from __future__ import annotations

import contextlib

import nats
import nats.errors
from nats.js.api import RawStreamMsg

from atp.core.settings import Settings
from atp.sdk.conformance import unique

LEASE = 2.0
SETTINGS = Settings(lease=LEASE, heartbeat=0.5, ready_timeout=10.0)
"""Settings whose ``lease`` (the ack wait) is short enough to wait out in a test."""


def private_url(server_url: str, **options: str) -> str:
    """``server_url`` with a stream and prefix no other test uses, plus ``options``."""
    name = unique("t")
    query = {"stream": name.upper(), "prefix": name, **options}
    return server_url + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def stream_of(url: str) -> str:
    return url.split("stream=", 1)[1].split("&", 1)[0]


async def delete_stream(url: str) -> None:
    """Drop the test's stream (and its consumers) from a shared server."""
    server = url.split("?", 1)[0]
    with contextlib.suppress(nats.errors.Error, OSError):
        nc = await nats.connect(server, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await nc.jetstream().delete_stream(stream_of(url))
        finally:
            await nc.close()


async def stored_messages(server_url: str, stream: str) -> list[RawStreamMsg]:
    """Every message the stream holds, oldest first, as the server stored it."""
    nc = await nats.connect(server_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        first, last = info.state.first_seq, info.state.last_seq
        return [await js.get_msg(stream, seq) for seq in range(first, last + 1)]
    finally:
        await nc.close()
