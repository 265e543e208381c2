"""The arithmetic of token buckets and sliding windows, as every ledger applies it.

Pure functions over plain state, so the memory and SQLite ledgers share one copy and the
Redis scripts mirror it line for line (``plugins/redis/lua/_flow.lua``); the conformance
suite holds them all to the same answers.

A bucket is GCRA (the generic cell rate algorithm): its state is ``tat``, the theoretical
arrival time of the next admission. With rate ``r`` and burst ``b``, an admission at
``now`` is allowed when ``max(tat, now) - now <= (b - 1) / r``, and then moves ``tat`` on by
``1 / r``: any stretch of ``T`` seconds admits at most ``b + r * T``.

A window keeps the times of its admissions in the last ``period`` seconds and allows one
more while it holds fewer than ``count``: any stretch of ``period`` seconds admits at
most ``count``.

Both keep a ``queue`` time too: when a task is refused, it is told to come back at
``max(queue + spacing, earliest)`` and ``queue`` moves there, so tasks held back one after
another come back spaced at the rate, not all at the first free moment.
"""

from __future__ import annotations

import bisect

__all__ = ["EPSILON", "bucket_admit", "window_admit"]

EPSILON = 1e-9
"""Slack for float comparisons of times."""


def bucket_admit(
    tat: float, queue: float, now: float, rate: float, burst: int
) -> tuple[bool, float, float, float]:
    """One admission at ``now``: ``(allowed, new_tat, new_queue, retry_at)``.

    When allowed, ``new_tat`` is what to store (nothing is taken unless every gate of the
    task allows, so a caller commits ``new_tat`` only then) and ``retry_at`` is ``now``.
    When refused, ``new_tat`` is ``tat`` unchanged and ``new_queue``/``retry_at`` the time
    to come back.
    """
    interval = 1.0 / rate
    tolerance = (burst - 1) * interval
    start = max(tat, now)
    if start - now <= tolerance + EPSILON:
        return True, start + interval, queue, now
    retry_at = max(queue + interval, start - tolerance)
    return False, tat, retry_at, retry_at


def window_admit(
    times: list[float], queue: float, now: float, count: int, period: float
) -> tuple[bool, list[float], float, float]:
    """One admission at ``now`` against sorted admission ``times``:
    ``(allowed, live_times, new_queue, retry_at)``.

    ``live_times`` drops the times older than ``period``; when allowed the caller appends
    ``now`` to it on commit. When refused, ``retry_at`` is when enough old admissions have
    left the window, spaced after ``queue`` by ``period / count``.
    """
    live = times[bisect.bisect_right(times, now - period) :]
    if len(live) < count:
        return True, live, queue, now
    earliest = live[len(live) - count] + period
    retry_at = max(queue + period / count, earliest)
    return False, live, retry_at, retry_at
