"""What every suite shares: run a scenario several times and keep the medians."""

from __future__ import annotations

import statistics
from collections.abc import Callable

__all__ = ["median"]


def median(repeat: int, once: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run ``once`` ``repeat`` times; return the median of each figure it reports."""
    runs = [once() for _ in range(repeat)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}
