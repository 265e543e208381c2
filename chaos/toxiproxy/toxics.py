"""Toxics: what a proxy does to the bytes of one direction of a link.

Each toxic is a stage in a chain. ``apply`` receives a chunk with the time it arrived at the
proxy and calls ``forward`` zero or more times with what goes on to the next stage, so a
toxic can delay (latency, bandwidth), split (slicer), drop (timeout) or cut (limit_data,
reset_peer) the stream. Attributes, units and defaults follow Shopify's toxiproxy README.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["STREAMS", "TOXIC_TYPES", "Flow", "Forward", "Toxic", "parse_toxic"]

STREAMS = ("upstream", "downstream")
"""upstream: client to server; downstream: server to client (the default)."""

Forward = Callable[[bytes], Awaitable[None]]


class Flow(Protocol):
    """What a toxic may do to the link it sits on, seen from one direction."""

    passed: int
    """Bytes this direction has forwarded past ``limit_data`` so far."""

    def close(self) -> None: ...

    def reset(self) -> None: ...


ToxicBehaviour = Callable[["Toxic", Flow, bytes, float, Forward], Awaitable[None]]


@dataclass
class Toxic:
    """One toxic as the API shows it; ``attributes`` holds every attribute of its type."""

    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    def number(self, key: str) -> float:
        return float(self.attributes.get(key, 0))

    async def apply(self, flow: Flow, data: bytes, arrived: float, forward: Forward) -> None:
        await TOXIC_TYPES[self.type].behaviour(self, flow, data, arrived, forward)


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _latency(toxic: Toxic, flow: Flow, data: bytes, arrived: float, fwd: Forward) -> None:
    # Relative to arrival, so chunks in flight are delayed once each, not one after another.
    jitter = toxic.number("jitter")
    delay = toxic.number("latency") + (random.uniform(-jitter, jitter) if jitter else 0.0)
    await _sleep_until(arrived + max(delay, 0.0) / 1000)
    await fwd(data)


async def _bandwidth(toxic: Toxic, flow: Flow, data: bytes, arrived: float, fwd: Forward) -> None:
    rate = toxic.number("rate") * 1000  # KB/s
    if rate <= 0:
        await fwd(data)
        return
    step = max(int(rate / 10), 1)  # a tenth of a second's worth per write
    for start in range(0, len(data), step):
        piece = data[start : start + step]
        await asyncio.sleep(len(piece) / rate)
        await fwd(piece)


async def _slicer(toxic: Toxic, flow: Flow, data: bytes, arrived: float, fwd: Forward) -> None:
    average = int(toxic.number("average_size"))
    variation = int(toxic.number("size_variation"))
    if average <= 0:
        await fwd(data)
        return
    start = 0
    while start < len(data):
        size = max(1, average + random.randint(-variation, variation))
        await fwd(data[start : start + size])
        start += size
        if start < len(data):
            await asyncio.sleep(toxic.number("delay") / 1_000_000)  # microseconds


async def _limit_data(toxic: Toxic, flow: Flow, data: bytes, arrived: float, fwd: Forward) -> None:
    room = int(toxic.number("bytes")) - flow.passed
    if len(data) <= room:
        flow.passed += len(data)
        await fwd(data)
        return
    if room > 0:
        flow.passed += room
        await fwd(data[:room])
    flow.close()


async def _timeout(toxic: Toxic, flow: Flow, data: bytes, arrived: float, fwd: Forward) -> None:
    """Drop the data; the link's guard closes it after ``timeout`` ms of this (0: never)."""


async def _reset_peer(toxic: Toxic, flow: Flow, data: bytes, arrived: float, fwd: Forward) -> None:
    await asyncio.sleep(toxic.number("timeout") / 1000)
    flow.reset()


async def _pass(toxic: Toxic, flow: Flow, data: bytes, arrived: float, fwd: Forward) -> None:
    """slow_close acts when the stream ends (see Pipe), not on data."""
    await fwd(data)


@dataclass(frozen=True)
class ToxicType:
    defaults: Mapping[str, float]
    behaviour: ToxicBehaviour


TOXIC_TYPES: dict[str, ToxicType] = {
    "latency": ToxicType({"latency": 0, "jitter": 0}, _latency),
    "bandwidth": ToxicType({"rate": 0}, _bandwidth),
    "slow_close": ToxicType({"delay": 0}, _pass),
    "timeout": ToxicType({"timeout": 0}, _timeout),
    "reset_peer": ToxicType({"timeout": 0}, _reset_peer),
    "slicer": ToxicType({"average_size": 0, "size_variation": 0, "delay": 0}, _slicer),
    "limit_data": ToxicType({"bytes": 0}, _limit_data),
}


class ToxicError(ValueError):
    """A toxic definition that cannot be used; the message is the API's error text."""


def parse_toxic(body: Mapping[str, Any]) -> Toxic:
    """Build a toxic from an API body, filling toxiproxy's defaults; raise ToxicError."""
    kind = body.get("type")
    if kind not in TOXIC_TYPES:
        raise ToxicError("invalid toxic type")
    stream = body.get("stream") or "downstream"
    if stream not in STREAMS:
        raise ToxicError("stream was invalid, can be either upstream or downstream")
    toxic = Toxic(
        name=str(body.get("name") or f"{kind}_{stream}"),
        type=kind,
        stream=stream,
        attributes=dict(TOXIC_TYPES[kind].defaults),
    )
    update_toxic(toxic, body)
    return toxic


def update_toxic(toxic: Toxic, body: Mapping[str, Any]) -> None:
    """Merge ``attributes`` and ``toxicity`` from an API body; raise ToxicError."""
    toxicity = body.get("toxicity", toxic.toxicity)
    if not _is_number(toxicity) or not 0.0 <= float(toxicity) <= 1.0:
        raise ToxicError("toxicity must be a number from 0 to 1")
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ToxicError("bad request body")
    for key, value in attributes.items():
        if key not in TOXIC_TYPES[toxic.type].defaults:
            continue  # toxiproxy ignores attributes a type does not have
        if not _is_number(value) or value < 0:
            raise ToxicError(f"attribute {key} must be a number >= 0")
    toxic.toxicity = float(toxicity)
    toxic.attributes.update(
        {k: v for k, v in attributes.items() if k in TOXIC_TYPES[toxic.type].defaults}
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
