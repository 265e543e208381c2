"""A small disk for the SQLite database, and a ballast file to fill it.

A deployment whose suite asks for one (``Suite.disk``) mounts a tmpfs of that many
megabytes and keeps ``atp.db`` there (mounting needs root; without it the run reports
why). The ``DiskFull`` fault fills what is free with the ballast, holds, then deletes it:
every write in between fails with ENOSPC, as on a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

__all__ = ["MountRefused", "drain", "fill", "mount_tmpfs", "unmount"]

BALLAST = "ballast"
CHUNK = 1 << 20


class MountRefused(RuntimeError):
    """The tmpfs could not be mounted (not root, or no permission in this container)."""


def mount_tmpfs(path: Path, megabytes: int) -> None:
    """Mount a tmpfs of ``megabytes`` at ``path``; MountRefused says why it could not."""
    path.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise MountRefused(f"cannot run mount: {exc}") from exc
    if done.returncode != 0:
        raise MountRefused(f"mount -t tmpfs refused: {done.stderr.strip() or done.returncode}")


def unmount(path: Path) -> None:
    """Unmount ``path`` (lazily: a process killed late may still hold a file there)."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def fill(folder: Path) -> int:
    """Write a ballast file into ``folder`` until the disk is full; return its size."""
    written, chunk = 0, CHUNK
    with open(folder / BALLAST, "wb", buffering=0) as ballast:
        while chunk >= 512:
            try:
                written += ballast.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    return written


def drain(folder: Path) -> None:
    """Delete the ballast: the disk has room again."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / BALLAST)
