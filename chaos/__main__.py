"""``python -m chaos`` (also ``atp chaos``, ``make chaos``): run suites, write a report.

    python -m chaos ls
    python -m chaos run [SUITE ...] [--stack NAME ...] [--seed N] [--quick]
                        [--reports DIR] [--toxiproxy URL]
    python -m chaos soak --minutes N [--stack NAME] [--seed N] [--hostile KIND,...]
                         [--reports DIR] [--toxiproxy URL]

Without SUITE every suite runs, each on every stack it applies to whose servers are
installed. ``soak`` runs the workload for N minutes under a rolling, seeded schedule of
every fault kind that applies to the stack, then checks every invariant. The exit status
is 0 when every run passed every invariant, 1 otherwise.
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

from atp.adapters.cli._output import progress
from chaos.app import HOSTILE
from chaos.deployment import Stack
from chaos.report import RunResult, soak_figures, write_report, write_soak_report
from chaos.runner import run_one
from chaos.soak import soak
from chaos.suites import STACKS, SUITES, Suite, quick

REPORTS = Path(__file__).resolve().parent / "reports"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "ls":
        for suite in SUITES.values():
            stacks = ", ".join(s.name for s in STACKS.values() if suite.applies(s))
            print(f"{suite.name:18s} {suite.title}\n{'':18s} stacks: {stacks}")
        return 0
    if args.command == "soak":
        return _soak(args, argv)
    unknown = sorted(set(args.suites) - set(SUITES)) + sorted(set(args.stack) - set(STACKS))
    if unknown:
        print(
            f"unknown suite or stack: {', '.join(unknown)} (see python -m chaos ls)",
            file=sys.stderr,
        )
        return 2
    seed = _seed(args)
    folder = _folder()
    results = asyncio.run(_run_all(args, seed, folder))
    report = write_report(results, args.reports, seed)
    return _verdict(results, report, folder)


def _soak(args: argparse.Namespace, argv: list[str] | None) -> int:
    kinds = None if args.hostile is None else tuple(k for k in args.hostile.split(",") if k)
    problems = _soak_problems(args, kinds)
    if problems:
        print("soak: " + "; ".join(problems), file=sys.stderr)
        return 2
    seed, folder, stack = _seed(args), _folder(), STACKS[args.stack]
    suite = soak(stack, args.minutes, kinds)
    print(f"soaking {stack.name} for {args.minutes:g} min (seed {seed}); {suite.title}", flush=True)
    result = asyncio.run(run_one(suite, stack, seed, folder, args.toxiproxy))
    command = " ".join(["python -m chaos", *(argv if argv is not None else sys.argv[1:])])
    if "--seed" not in command:
        command += f" --seed {seed}"
    report = write_soak_report(result, args.reports, command)
    for name, value in soak_figures(result).items():
        print(f"{name}: {value}")
    return _verdict([result], report, folder)


def _soak_problems(args: argparse.Namespace, kinds: tuple[str, ...] | None) -> list[str]:
    problems = []
    if args.minutes <= 0:
        problems.append(f"--minutes must be > 0, got {args.minutes:g}")
    if args.stack not in STACKS:
        problems.append(f"unknown stack {args.stack!r} (stacks: {', '.join(STACKS)})")
    wrong = sorted(set(kinds or ()) - set(HOSTILE))
    if wrong:
        problems.append(f"unknown hostile kinds {wrong} (kinds: {', '.join(HOSTILE)})")
    return problems


def _seed(args: argparse.Namespace) -> int:
    return args.seed if args.seed is not None else random.randrange(1_000_000)


def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="atp-chaos-"))
    # The runner's own clients log reconnects while servers are down: into the run folder.
    logging.basicConfig(
        filename=folder / "runner.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return folder


def _verdict(results: list[RunResult], report: Path, folder: Path) -> int:
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
    runs = _runs(args)
    with progress(len(runs), "chaos runs") as advance:
        for suite, stack in runs:
            print(f"running {suite.name} on {stack.name} (seed {seed})", flush=True)
            results.append(await run_one(suite, stack, seed, folder, args.toxiproxy))
            advance(1)
    return results


def _runs(args: argparse.Namespace) -> list[tuple[Suite, Stack]]:
    """The (suite, stack) pairs the arguments ask for, in the order they run."""
    runs = []
    for name in args.suites or SUITES:
        suite = quick(SUITES[name]) if args.quick else SUITES[name]
        runs += [
            (suite, stack)
            for stack in STACKS.values()
            if (not args.stack or stack.name in args.stack) and suite.applies(stack)
        ]
    return runs


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
    soak = commands.add_parser("soak", help="the workload for N minutes under rolling faults")
    soak.add_argument("--minutes", type=float, required=True, help="how long to publish")
    soak.add_argument("--stack", default="redis", help="the stack to soak (default: redis)")
    soak.add_argument("--seed", type=int, help="seed of the fault schedule (default: random)")
    soak.add_argument(
        "--hostile", help="hostile handler kinds, comma-separated (default: all; '' for none)"
    )
    soak.add_argument("--reports", type=Path, default=REPORTS, help="where the report goes")
    soak.add_argument("--toxiproxy", help="URL of a running Toxiproxy (default: start ours)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
