"""The ledger: what producers and handlers did, written as they did it, read back at the end.

Each process appends JSON lines to a file of its own in the ledger folder
(``exec-<pid>.jsonl`` for handlers, ``producer.jsonl`` for the runner). One ``write`` of a
short line to a file opened for appending is not torn by SIGKILL; a last line cut short
by a power loss is skipped when read.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LEDGER_ENV", "Ledger", "LedgerView", "record"]

LEDGER_ENV = "CHAOS_LEDGER"
"""The environment variable naming the ledger folder for handler processes."""


def record(folder: Path | str, name: str, **entry: Any) -> None:
    """Append one entry, stamped with wall time and pid, to ``folder/name.jsonl``."""
    line = json.dumps({"at": time.time(), "pid": os.getpid(), **entry}, separators=(",", ":"))
    with open(Path(folder) / f"{name}.jsonl", "a") as out:
        out.write(line + "\n")


class Ledger:
    """The runner's side: producer events into ``producer.jsonl``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def accepted(self, key: str, task_id: str, subject: str, delay: float) -> None:
        record(
            self.folder,
            "producer",
            ev="accepted",
            key=key,
            task=task_id,
            subject=subject,
            delay=delay,
        )

    def refused(self, keys: list[str], error: str) -> None:
        record(self.folder, "producer", ev="error", keys=keys, error=error)

    def started_run(self, run_id: str) -> None:
        record(self.folder, "producer", ev="run", run=run_id)

    def cancelled(self, key: str, task_id: str, state: str) -> None:
        record(self.folder, "producer", ev="cancel", key=key, task=task_id, state=state)

    def read(self) -> LedgerView:
        return LedgerView.load(self.folder)


@dataclass
class LedgerView:
    """Everything the ledger holds, indexed for the invariants."""

    accepted: dict[str, str] = field(default_factory=dict)
    """Idempotency key -> the task id the producer got back (the last one, if several)."""
    ids_per_key: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    subjects: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    cancels: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task id -> the cancel event, for cancels that ended the task (state CANCELLED)."""
    starts: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    done: Counter[str] = field(default_factory=Counter)
    """Task id -> completed executions."""
    runs: list[str] = field(default_factory=list)
    """Workflow runs the producer started."""

    @classmethod
    def load(cls, folder: Path) -> LedgerView:
        view = cls()
        for path in sorted(folder.glob("*.jsonl")):
            for entry in _entries(path):
                view._add(entry)
        return view

    def _add(self, entry: dict[str, Any]) -> None:
        kind = entry.get("ev")
        if kind == "accepted":
            self.accepted[entry["key"]] = entry["task"]
            self.ids_per_key[entry["key"]].add(entry["task"])
            self.subjects[entry["task"]] = entry["subject"]
        elif kind == "error":
            self.errors.append(entry)
        elif kind == "cancel" and entry["state"] == "CANCELLED":
            self.cancels[entry["task"]] = entry
        elif kind == "run":
            self.runs.append(entry["run"])
        elif kind == "start":
            self.starts[entry["task"]].append(entry)
        elif kind == "done":
            self.done[entry["task"]] += 1


def _entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill of the writer
    return entries
