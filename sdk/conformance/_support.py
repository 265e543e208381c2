"""What the three conformance suites share: the clock fixture, passing time, unique names."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar, NoReturn

import pytest

from atp.core.clock import ManualClock
from atp.core.ids import new_id
from atp.core.model import RetryPolicy, Task
from atp.core.ports import Clock
from atp.core.subjects import validate_subject

__all__ = [
    "PAYLOADS",
    "PortSuite",
    "deep_payload",
    "full_task",
    "is_manual",
    "make_task",
    "pass_time",
    "payload_id",
    "unique",
]

PAYLOADS: list[Any] = [
    None,
    0,
    -(2**62),
    0.1,
    -1.5e-300,
    True,
    "",
    "plain",
    "ünïcødé ✓ 日本語 🚀 and a nul \u0000 inside",
    [],
    {},
    [1, "two", 3.5, None, False, {"k": []}],
    {"order": {"id": 42, "lines": [{"sku": "Ä-1", "qty": 2}], "note": None}, "ok": True},
    {"ключ": {"嵌套": ["emoji 😀", {"deep": [[[]]]}]}},
]


def deep_payload(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"level": level, "next": [value]}
    return value


def payload_id(payload: Any) -> str:
    text = repr(payload)
    return text if len(text) <= 24 else text[:21] + "..."


def make_task(subject: str, now: float, **fields: Any) -> Task:
    """A task created at ``now``, due at ``now`` unless ``run_at`` is given."""
    fields.setdefault("run_at", now)
    return Task(id=new_id(now), subject=subject, created_at=now, **fields)


def full_task(subject: str, now: float) -> Task:
    """A task with every envelope field set to a value other than its default."""
    return make_task(
        subject,
        now,
        payload={"text": "héllo ✓", "n": [1, 2.5, None, {"x": True}]},
        headers={
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "ключ": "значение ✓",
        },
        idempotency_key=unique("key"),
        run_at=now + 3600.25,
        max_attempts=7,
        retry=RetryPolicy(base=0.5, factor=3.0, cap=60.0, jitter=False),
        timeout=12.5,
        priority=-3,
        schedule="nightly-report",
        tick=now - 60.0,
        workflow_run="run-1",
        step="extract",
    )


def unique(prefix: str = "conf") -> str:
    """Return ``prefix`` and a random suffix, unique per call.

    The result is one subject token (``[A-Za-z0-9_-]+``), so it serves as a subject
    prefix, a consumer group or a lease name on a server that other runs share.
    """
    validate_subject(prefix)
    if "." in prefix:
        raise ValueError(f"unique(): prefix {prefix!r} must be a single token, without dots")
    return f"{prefix}_{secrets.token_hex(6)}"


def is_manual(clock: Clock) -> bool:
    """Tell whether time moves only when the suite advances it."""
    return isinstance(clock, ManualClock)


async def pass_time(clock: Clock, seconds: float) -> None:
    """Let ``seconds`` pass: advance a ManualClock, or really wait on any other clock."""
    if isinstance(clock, ManualClock):
        await clock.advance(seconds)
    else:
        await clock.sleep(seconds)


class PortSuite:
    """Fixtures and knobs every suite has; a subclass overrides what its backend needs."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    max_real_wait: ClassVar[float] = 10.0
    """Longest single real-time wait a test may need with a real clock; a test needing
    more (a transport configured with a long lease) is skipped, naming this knob."""

    @pytest.fixture
    def clock(self) -> Clock:
        """The clock the backend under test is built with. Override it to return a
        ``SystemClock`` when the backend's server keeps its own time."""
        return ManualClock()

    def real_wait(self, clock: Clock, seconds: float, what: str) -> float:
        """Return ``seconds``, or skip the test if a real clock would wait too long."""
        if not is_manual(clock) and seconds > self.max_real_wait:
            pytest.skip(
                f"{what} needs {seconds:.1f} s of real time, over max_real_wait="
                f"{self.max_real_wait:.1f} s: build the backend with a shorter lease or ttl "
                "in the fixture, or raise max_real_wait on the test class"
            )
        return seconds


def missing_fixture(suite: object, name: str) -> NoReturn:
    """Fail a test whose suite did not override the backend fixture ``name``."""
    pytest.fail(f"{type(suite).__name__} must define a `{name}` fixture (see its docstring)")
