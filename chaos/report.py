"""The Markdown report of a chaos run: scenario, workload, faults, invariants, figures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.faults import FaultEvent
from chaos.invariants import Check

__all__ = ["RunResult", "write_report"]


@dataclass
class RunResult:
    """One suite on one stack: what was done and what was found."""

    suite: str
    title: str
    stack: str
    seed: int
    started: float
    finished: float = 0.0
    workload: dict[str, float] = field(default_factory=dict)
    faults: list[FaultEvent] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: str = ""
    """Why the run could not finish (a server missing, a deployment that never started)."""

    @property
    def passed(self) -> bool:
        return not self.error and all(check.passed for check in self.checks)


def _stamp(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}"


def render(result: RunResult) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        f"### {result.suite} on {result.stack}: {verdict}",
        "",
        result.title,
        "",
        f"- seed {result.seed}; {_stamp(result.started)} to {_stamp(result.finished)} UTC"
        f" ({result.finished - result.started:.1f} s)",
    ]
    if result.error:
        lines += ["", f"**Not run to the end:** {result.error}"]
    lines += ["", "Workload: " + ", ".join(f"{k} {v:g}" for k, v in result.workload.items())]
    lines += ["", "| at (s) | UTC | fault | what happened |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {e.offset:.1f} | {_stamp(e.at)} | {e.fault} | {e.detail} |" for e in result.faults
    ] or ["| | | none | |"]
    lines += ["", "| invariant | result | figures |", "| --- | --- | --- |"]
    for check in result.checks:
        figures = "; ".join(f"{k}: {v}" for k, v in check.figures.items())
        mark = "pass" if check.passed else f"**FAIL** {check.detail}"
        lines.append(f"| {check.name} | {mark} | {figures} |")
    return "\n".join(lines) + "\n"


def write_report(results: list[RunResult], folder: Path, seed: int) -> Path:
    """Write one report for a whole ``atp chaos run``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    started = min((r.started for r in results), default=time.time())
    path = folder / f"chaos-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}.md"
    passed = sum(r.passed for r in results)
    head = [
        f"# atp chaos run, seed {seed}",
        "",
        f"{passed} of {len(results)} runs passed every invariant.",
        "",
        "| suite | stack | result |",
        "| --- | --- | --- |",
    ]
    head += [f"| {r.suite} | {r.stack} | {'PASS' if r.passed else 'FAIL'} |" for r in results]
    path.write_text("\n".join(head) + "\n\n" + "\n".join(render(r) for r in results))
    return path
