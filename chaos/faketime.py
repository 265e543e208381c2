"""Clocks a fault can move: each atp process runs under libfaketime, reading its offset
from a file of its own on every call, so the offset changes while the process runs.

Only the wall clock moves (``time.time()``, what atp's SystemClock reads); the monotonic
clock the event loop sleeps by is left alone, as a real NTP step or a wrong hardware
clock leaves it. Debian package ``libfaketime``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["LIBRARY", "available", "environment", "set_offset"]

LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
FILE_ENV = "FAKETIME_TIMESTAMP_FILE"


def available() -> bool:
    """Whether libfaketime is installed where ``environment`` points."""
    return LIBRARY.exists()


def environment(folder: Path, name: str, base: Mapping[str, str]) -> dict[str, str]:
    """The variables that put process ``name`` on a movable clock, its offset file in
    ``folder`` starting at 0. RuntimeError when libfaketime is not installed."""
    if not available():
        raise RuntimeError(
            f"clock faults need libfaketime ({LIBRARY}): apt-get install libfaketime"
        )
    file = folder / f"clock-{name}"
    _write(file, 0.0)
    preload = " ".join(filter(None, [str(LIBRARY), base.get("LD_PRELOAD")]))
    return {
        "LD_PRELOAD": preload,
        FILE_ENV: str(file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def set_offset(env: Mapping[str, str], seconds: float) -> None:
    """Move the clock of the process started with ``env`` to ``seconds`` off the real one."""
    _write(Path(env[FILE_ENV]), seconds)


def _write(file: Path, seconds: float) -> None:
    # Replaced whole, so libfaketime never reads a half-written offset.
    scratch = file.with_suffix(".new")
    scratch.write_text(f"{seconds:+.3f}\n")
    os.replace(scratch, file)
