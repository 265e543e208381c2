"""``atp workers ls`` and ``atp breakers ls``: the fleet (ADR 0040, 0041).

Workers announce themselves in the coordinator's registry every heartbeat and drop out
once ``registry_ttl`` passes without an announcement; the scheduler's leader is read off
its lease. Breakers live in the store's ledger, shared by every worker of a group.
"""

from __future__ import annotations

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import echo_json, iso, table
from atp.core.fleet import Fleet, FleetService
from atp.core.flow.breaker import BreakerState, Circuit
from atp.core.platform import Platform
from atp.core.ports import Lease, Member
from atp.sdk.wire.fleet import breaker_to_dict, fleet_to_dict

__all__ = ["breakers", "workers"]

WORKER_HEADERS = ("NAME", "HOST", "PID", "GROUP", "PATTERNS", "RUNNING", "VERSION", "SEEN")
BREAKER_HEADERS = ("GROUP", "SUBJECT", "CIRCUIT", "OK", "FAILED", "OPEN UNTIL", "PROBE")


@click.group()
def workers() -> None:
    """List the live workers and the scheduler's leader."""


@workers.command("ls")
@click.option("--json", "as_json", is_flag=True, help='Print {"workers", "leader", "registry"}.')
@pass_options
def ls_workers(options: Options, as_json: bool) -> None:
    """List the workers in the coordinator's registry, then the scheduler's leader.

    Each worker announces itself every heartbeat; one that stops (killed, cut off) is
    gone once registry_ttl passed, one stopped cleanly at once. RUNNING is attempts in
    flight of its concurrency; SEEN is how long ago it last announced. The leader line
    names the scheduler replica holding the lease and its fencing token.
    """
    found, now = options.on_platform(_read)
    if as_json:
        echo_json(fleet_to_dict(found))
        return
    if found.workers:
        table(WORKER_HEADERS, [worker_row(member, now) for member in found.workers])
    elif found.registry:
        click.echo("no workers listed")
    else:
        click.echo("the coordinator keeps no registry: workers are not listed")
    click.echo(leader_line(found.leader))


async def _read(platform: Platform) -> tuple[Fleet, float]:
    return await FleetService(platform).workers(), platform.clock.now()


def worker_row(member: Member, now: float) -> tuple[str, ...]:
    return (
        member.name,
        member.host,
        str(member.pid),
        member.group,
        ",".join(member.patterns),
        f"{member.running}/{member.concurrency}",
        member.version,
        f"{max(now - member.seen_at, 0.0):.1f}s ago",
    )


def leader_line(leader: Lease | None) -> str:
    """``leader: OWNER (fencing token N, lease until ISO)``, or that none leads."""
    if leader is None:
        return "leader: none (no scheduler holds the lease)"
    until = iso(leader.expires_at)
    return f"leader: {leader.owner} (fencing token {leader.token}, lease until {until})"


@click.group()
def breakers() -> None:
    """List the circuit breakers of the worker groups' subjects."""


@breakers.command("ls")
@click.option("--json", "as_json", is_flag=True, help='Print {"breakers": [...]}.')
@pass_options
def ls_breakers(options: Options, as_json: bool) -> None:
    """List every breaker not closed, and every closed one that counted lately.

    OK and FAILED count the current window. An open breaker holds its subject's tasks
    (their attempts unspent) until OPEN UNTIL; then one PROBE runs, half-open, and its
    success closes the breaker. Exits 5 if the store keeps no breakers.
    """
    found = options.using(FleetService, lambda service: service.breakers())
    if as_json:
        echo_json({"breakers": [breaker_to_dict(state) for state in found]})
    elif found:
        table(BREAKER_HEADERS, [breaker_row(state) for state in found])
    else:
        click.echo("no breakers have counted lately: every circuit is closed")


def breaker_row(state: BreakerState) -> tuple[str, ...]:
    is_open = state.circuit is Circuit.OPEN
    return (
        state.group,
        state.subject,
        str(state.circuit),
        str(state.ok),
        str(state.failed),
        iso(state.open_until) if is_open else "-",
        state.probe or "-",
    )
