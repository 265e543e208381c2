"""``python -m chaos`` (also ``atp chaos``, ``make chaos``): run suites, write a report.

    python -m chaos ls
    python -m chaos run [SUITE ...] [--stack NAME ...] [--seed N] [--quick]
                        [--reports DIR] [--toxiproxy URL]

Without SUITE every suite runs, each on every stack it applies to whose servers are
installed. The exit status is 0 when every run passed every invariant, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import sys
import tempfile
from pathlib import Path

from chaos.report import RunResult, write_report
from chaos.runner import run_one
from chaos.suites import STACKS, SUITES, quick

REPORTS = Path(__file__).resolve().parent / "reports"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "ls":
        for suite in SUITES.values():
            stacks = ", ".join(s.name for s in STACKS.values() if suite.applies(s))
            print(f"{suite.name:14s} {suite.title}\n{'':14s} stacks: {stacks}")
        return 0
    unknown = sorted(set(args.suites) - set(SUITES)) + sorted(set(args.stack) - set(STACKS))
    if unknown:
        print(
            f"unknown suite or stack: {', '.join(unknown)} (see python -m chaos ls)",
            file=sys.stderr,
        )
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    folder = Path(tempfile.mkdtemp(prefix="atp-chaos-"))
    # The runner's own clients log reconnects while servers are down: into the run folder.
    logging.basicConfig(
        filename=folder / "runner.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    results = asyncio.run(_run_all(args, seed, folder))
    report = write_report(results, args.reports, seed)
    for result in results:
        verdict = "PASS" if result.passed else "FAIL"
        print(f"{verdict}  {result.suite} on {result.stack}  {result.error}")
    print(f"report: {report}")
    passed = bool(results) and all(r.passed for r in results)
    if passed:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"logs, ledgers and stores of the runs kept in {folder}")
    return 0 if passed else 1


async def _run_all(args: argparse.Namespace, seed: int, folder: Path) -> list[RunResult]:
    results = []
    for name in args.suites or SUITES:
        suite = quick(SUITES[name]) if args.quick else SUITES[name]
        for stack in STACKS.values():
            if (args.stack and stack.name not in args.stack) or not suite.applies(stack):
                continue
            print(f"running {suite.name} on {stack.name} (seed {seed})", flush=True)
            results.append(await run_one(suite, stack, seed, folder, args.toxiproxy))
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ls", help="list the suites and their stacks")
    run = commands.add_parser("run", help="run suites and write a Markdown report")
    run.add_argument("suites", nargs="*", help="suites to run (default: all)")
    run.add_argument("--stack", action="append", default=[], help="only these stacks")
    run.add_argument("--seed", type=int, help="seed of the fault schedule (default: random)")
    run.add_argument("--quick", action="store_true", help="a short workload (as CI runs)")
    run.add_argument("--reports", type=Path, default=REPORTS, help="where reports go")
    run.add_argument("--toxiproxy", help="URL of a running Toxiproxy (default: start ours)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
