"""``atp limit set|ls|rm``, ``atp pause`` and ``atp resume``: flow control (ADR 0038).

Limits and pauses live in the store's ledger, so every worker on every host sees them at
its next look (a worker re-reads the rules when their version grows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import echo_json, table
from atp.adapters.cli._params import RATE
from atp.core.flow.rules import PAUSE_PREFIX, Limit, Rate, limit_to_dict
from atp.core.flow.service import FlowService, FlowStatus
from atp.core.subjects import compile_pattern

__all__ = ["limit", "pause", "resume"]

KEY_PREFIX = "k:"
"""Waiter lists of tasks behind a full key's concurrency are named ``k:<key>``."""
UNITS = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}
KEY_HELP = "TARGET is a key pattern (customer:42, customer:*, *), not a subject pattern."


@click.group()
def limit() -> None:
    """Set, list and remove flow-control limits.

    A limit on a subject pattern gives every matching task one shared budget; with --key
    each key matching TARGET gets its own, met by the tasks published with
    --concurrency-key or --rate-key. A concurrency key no limit names runs one at a time.
    A key rule's --weight is the share of wake-ups of the fair groups (--group-key) it
    matches while their tasks wait behind a full slot.
    """


@limit.command("set")
@click.argument("target")
@click.option("--key", is_flag=True, help=KEY_HELP)
@click.option("--concurrency", type=int, help="Tasks running at once, across every worker.")
@click.option("--rate", type=RATE, help="Runs started per period, on average: 10/s, 100/m.")
@click.option("--burst", type=int, help="Runs a --rate lets start at once [default: 1].")
@click.option("--window", type=RATE, help="At most this many runs in any period: 100/m.")
@click.option(
    "--weight",
    type=int,
    help="With --key: the matching groups' share of wake-ups, 1 to 1000 [default: 1].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stored limit as JSON.")
@pass_options
def set_limit(
    options: Options,
    target: str,
    key: bool,
    concurrency: int | None,
    rate: Rate | None,
    burst: int | None,
    window: Rate | None,
    weight: int | None,
    as_json: bool,
) -> None:
    """Create or replace the limit on TARGET.

    Give --concurrency, --rate (with --burst), --window or (with --key) --weight, or
    several. A limit already on TARGET is replaced whole. A bad value exits 2 and changes
    nothing.
    """
    wanted = Limit(target, key, concurrency, rate, burst, window, weight)
    stored = options.using(FlowService, lambda service: service.set_limit(wanted))
    if as_json:
        echo_json(limit_to_dict(stored))
    else:
        click.echo(f"set {stored.name}: {describe(stored)}")


@limit.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print limits, pauses and waiting as JSON.")
@pass_options
def ls(options: Options, as_json: bool) -> None:
    """List limits and paused subject patterns, with the tasks waiting behind each.

    WAITING counts tasks held back by a full concurrency limit or by a pause; a rate or a
    window only spaces tasks out. --json prints {"limits", "pauses", "waiting",
    "version"}, waiting by waiter list (k:KEY, s:PATTERN, p:SUBJECT).
    """
    status = options.using(FlowService, lambda service: service.status())
    if as_json:
        echo_json(status_to_dict(status))
        return
    headers = ("RULE", "CONCURRENCY", "RATE", "BURST", "WINDOW", "WEIGHT", "WAITING")
    table(headers, rows(status))


@limit.command("rm")
@click.argument("target")
@click.option("--key", is_flag=True, help=KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@pass_options
def rm(options: Options, target: str, key: bool, as_json: bool) -> None:
    """Remove the limit on TARGET; exits 3 if there is none."""
    options.using(FlowService, lambda service: service.remove_limit(target, key=key))
    name = f"{'key' if key else 'subject'}:{target}"
    if as_json:
        echo_json({"removed": name})
    else:
        click.echo(f"removed {name}")


@click.command()
@click.argument("pattern")
@click.option("--json", "as_json", is_flag=True, help='Print {"pattern", "changed"}.')
@pass_options
def pause(options: Options, pattern: str, as_json: bool) -> None:
    """Stop workers taking tasks of subjects matching PATTERN until it is resumed.

    Publishing goes on; the tasks wait, keeping their attempts. Cron schedules have
    their own pause: atp cron pause NAME.
    """
    changed = options.using(FlowService, lambda service: service.pause(pattern))
    if as_json:
        echo_json({"pattern": pattern, "changed": changed})
    elif changed:
        click.echo(f"paused {pattern}")
    else:
        click.echo(f"{pattern} was paused already")


@click.command()
@click.argument("pattern")
@click.option("--json", "as_json", is_flag=True, help='Print {"pattern", "woken"}.')
@pass_options
def resume(options: Options, pattern: str, as_json: bool) -> None:
    """Undo atp pause PATTERN and wake the tasks it held; exits 3 if it is not paused.

    A subject another paused pattern matches stays held.
    """
    woken = options.using(FlowService, lambda service: service.resume(pattern))
    if as_json:
        echo_json({"pattern": pattern, "woken": woken})
    else:
        click.echo(f"resumed {pattern}: {woken} {'task' if woken == 1 else 'tasks'} woke")


def describe(limit: Limit) -> str:
    """A limit's budget in words: ``concurrency 3, rate 10/s (burst 5), window 100/m``,
    then ``weight 3`` if it gives one."""
    parts = []
    if limit.concurrency is not None:
        parts.append(f"concurrency {limit.concurrency}")
    if limit.rate is not None:
        parts.append(f"rate {rate_text(limit.rate)} (burst {limit.burst or 1})")
    if limit.window is not None:
        parts.append(f"window {rate_text(limit.window)}")
    if limit.weight is not None:
        parts.append(f"weight {limit.weight}")
    return ", ".join(parts)


def rate_text(rate: Rate | None) -> str:
    """A rate as ``--rate`` reads it: ``10/s``, ``100/m``, ``5/30s``; ``-`` for None."""
    if rate is None:
        return "-"
    unit = UNITS.get(rate.per)
    return f"{rate.count}/{unit}" if unit else f"{rate.count}/{rate.per:g}s"


def status_to_dict(status: FlowStatus) -> dict[str, object]:
    return {
        "limits": [limit_to_dict(limit) for limit in status.limits],
        "pauses": list(status.pauses),
        "waiting": status.waiting,
        "version": status.version,
    }


def rows(status: FlowStatus) -> list[tuple[str, ...]]:
    """One row per limit, one per pause, and one for the keys no limit names (if any
    wait): each with the tasks waiting behind it."""
    keys = {
        name[len(KEY_PREFIX) :]: count
        for name, count in status.waiting.items()
        if name.startswith(KEY_PREFIX)
    }
    owners = {key: _key_owner(key, status.limits) for key in keys}
    found = [_limit_row(limit, status.waiting, keys, owners) for limit in status.limits]
    found += [_pause_row(pattern, status.waiting) for pattern in status.pauses]
    unnamed = sum(count for key, count in keys.items() if owners[key] is None)
    if unnamed:
        found.append(("key:(no limit)", "1 each", "-", "-", "-", "-", str(unnamed)))
    return found


def _limit_row(
    limit: Limit,
    waiting: Mapping[str, int],
    keys: Mapping[str, int],
    owners: Mapping[str, Limit | None],
) -> tuple[str, ...]:
    if limit.key:
        count = sum(n for key, n in keys.items() if owners[key] is limit)
    else:
        count = waiting.get(f"s:{limit.target}", 0)
    return (
        limit.name,
        "-" if limit.concurrency is None else str(limit.concurrency),
        rate_text(limit.rate),
        "-" if limit.rate is None else str(limit.burst or 1),
        rate_text(limit.window),
        "-" if limit.weight is None else str(limit.weight),
        str(count),
    )


def _pause_row(pattern: str, waiting: Mapping[str, int]) -> tuple[str, ...]:
    matches = compile_pattern(pattern)
    count = sum(
        n
        for name, n in waiting.items()
        if name.startswith(PAUSE_PREFIX) and matches(name[len(PAUSE_PREFIX) :])
    )
    return (f"pause:{pattern}", "paused", "-", "-", "-", "-", str(count))


def _key_owner(key: str, limits: Sequence[Limit]) -> Limit | None:
    """The key limit whose concurrency ``key``'s tasks wait for: the most specific one
    (as ``Rules.gates`` picks it); None if none names the key."""
    found = [
        limit
        for limit in limits
        if limit.key and limit.concurrency is not None and limit.matches_key(key)
    ]
    return max(found, key=lambda limit: limit.specificity) if found else None
