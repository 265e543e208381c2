"""Slow fsync for the atp processes of a deployment, switched on and off while they run.

The kernel here has no device mapper, so ``dm-delay`` under a loop device is not an
option; instead each atp process preloads a shim (``slowfsync.c``, compiled into the
run's folder) whose ``fsync`` and ``fdatasync`` sleep for the milliseconds in a control
file before they run. SQLite's commits (``synchronous=full``) wait that long, as on a disk
whose flushes stall. Needs a C compiler (Debian package ``gcc``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FILE_ENV", "build", "environment", "set_delay"]

SOURCE = Path(__file__).with_name("slowfsync.c")
FILE_ENV = "CHAOS_FSYNC_DELAY_FILE"
LIBRARY = "slowfsync.so"


def build(folder: Path) -> Path:
    """Compile the shim into ``folder``; RuntimeError when no C compiler is installed."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("slow fsync needs a C compiler for its shim: apt-get install gcc")
    library = folder / LIBRARY
    command = [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SOURCE), "-ldl"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the slow fsync shim failed: {done.stderr.strip()}")
    return library


def environment(library: Path, control: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The variables that preload the shim, reading its delay from ``control`` (0 now)."""
    set_delay(control, 0)
    preload = " ".join(filter(None, [str(library), base.get("LD_PRELOAD")]))
    return {"LD_PRELOAD": preload, FILE_ENV: str(control)}


def set_delay(control: Path, milliseconds: int) -> None:
    """Every fsync of the shimmed processes now waits ``milliseconds`` first."""
    scratch = control.with_suffix(".new")
    scratch.write_text(f"{milliseconds}\n")
    os.replace(scratch, control)  # whole, so the shim never reads half a number
