"""The Markdown report of a chaos run: scenario, workload, faults, invariants, figures."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chaos.faults import FaultEvent
from chaos.invariants import Check

__all__ = ["RunResult", "soak_figures", "write_report", "write_soak_report"]


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
    if result.faults:
        kinds = Counter(e.fault for e in result.faults)
        lines += ["", "| fault | injected |", "| --- | --- |"]
        lines += [f"| {kind} | {n} |" for kind, n in sorted(kinds.items())]
    lines += ["", "| at (s) | UTC | fault | what happened |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {e.offset:.1f} | {_stamp(e.at)} | {e.fault} | {e.detail} |" for e in result.faults
    ] or ["| | | none | |"]
    lines += ["", "| invariant | result | figures |", "| --- | --- | --- |"]
    for check in result.checks:
        figures = "; ".join(f"{k}: {v}" for k, v in check.figures.items()).replace("|", "\\|")
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


def soak_figures(result: RunResult) -> dict[str, object]:
    """The figures a soak is judged by, gathered from its checks and faults."""
    figures = {check.name: check.figures for check in result.checks}
    final = figures.get("every accepted task reached a final state", {})
    runs = figures.get("each success ran to its end; extra runs counted", {})
    cron = figures.get("every cron tick in the window fired once", {})
    return {
        "tasks accepted": final.get("accepted", 0),
        "tasks lost": final.get("lost", "?"),
        "producer errors (retried with the same keys)": result.workload.get("errors", 0),
        "extra executions": runs.get("extra executions", 0),
        "extra executions by fault": runs.get("extra executions by fault", {}),
        "cron ticks in the window": cron.get("ticks in the window", 0),
        "cron ticks missed": cron.get("missed", "?"),
        "cron ticks doubled": cron.get("fired twice", "?"),
        "faults injected": len(result.faults),
        "faults by kind": dict(Counter(e.fault for e in result.faults).most_common()),
        "invariants passed": f"{sum(c.passed for c in result.checks)} of {len(result.checks)}",
    }


def write_soak_report(result: RunResult, folder: Path, command: str) -> Path:
    """Write the report of one soak: its figures first, then the run in full."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(result.started))}.md"
    verdict = "PASS" if result.passed else "FAIL"
    head = [f"# atp chaos soak on {result.stack}: {verdict}", "", f"`{command}`", ""]
    head += ["| figure | value |", "| --- | --- |"]
    head += [f"| {k} | {_shown(v)} |" for k, v in soak_figures(result).items()]
    path.write_text("\n".join(head) + "\n\n" + render(result))
    return path


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    return str(value)
