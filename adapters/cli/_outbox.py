"""``atp outbox ls`` and ``atp outbox flush``: a producer's outbox file (ADR 0043).

The file is the ``outbox`` setting's: publishes a Client kept while its store was away.
"""

from __future__ import annotations

import asyncio

import click

from atp.adapters.cli._context import Options, pass_options
from atp.adapters.cli._output import echo_json, iso, shorten, table
from atp.core.clock import SystemClock
from atp.core.platform import Platform
from atp.sdk.client import Client
from atp.sdk.outbox import Outbox, OutboxEntry
from atp.sdk.wire.rest import request_out

__all__ = ["outbox"]

HEADERS = ("TASK", "SUBJECT", "KEPT", "KEY")


@click.group()
def outbox() -> None:
    """Inspect and deliver the outbox of this host's producers (the outbox setting)."""


@outbox.command("ls")
@click.option("--rejected", is_flag=True, help="List what the store refused instead.")
@click.option("--limit", default=100, show_default=True, help="Most entries listed.")
@click.option("--json", "as_json", is_flag=True, help='Print {"pending", "entries"}.')
@pass_options
def ls_outbox(options: Options, rejected: bool, limit: int, as_json: bool) -> None:
    """List the oldest publishes waiting in the outbox, or those the store refused.

    A waiting publish is delivered by the next producer's Client on this file (or
    ``atp outbox flush``); a refused one is never retried: ERROR says why.
    """
    path = _path(options)
    pending, entries = asyncio.run(_read(path, rejected, limit))
    if as_json:
        echo_json({"pending": pending, "entries": [_entry_dict(e) for e in entries]})
        return
    headers = (*HEADERS, "ERROR") if rejected else HEADERS
    if entries:
        table(headers, [_row(entry, rejected) for entry in entries])
    click.echo(f"{pending} publishes wait in {path}")


@outbox.command("flush")
@click.option("--json", "as_json", is_flag=True, help='Print {"delivered", "pending"}.')
@pass_options
def flush_outbox(options: Options, as_json: bool) -> None:
    """Deliver the outbox to the store now, oldest first; exits 6 if it is still away.

    Delivers nothing while another process on this file is delivering it.
    """
    path = _path(options)
    delivered, pending = options.on_platform(_flush)
    if as_json:
        echo_json({"delivered": delivered, "pending": pending})
    else:
        click.echo(f"delivered {delivered} publishes from {path}; {pending} wait")


def _path(options: Options) -> str:
    path = options.settings(quiet=True).outbox
    if not path:
        raise click.UsageError("no outbox is set: give the outbox setting (ATP_OUTBOX)")
    return path


async def _read(path: str, rejected: bool, limit: int) -> tuple[int, list[OutboxEntry]]:
    box = Outbox(path, SystemClock())
    try:
        entries = await (box.rejected(limit) if rejected else box.entries(limit))
        return await box.pending(), entries
    finally:
        await box.close()


async def _flush(platform: Platform) -> tuple[int, int]:
    client = Client(platform)
    try:
        delivered = await client.flush_outbox()
        box = client.outbox
        return delivered, 0 if box is None else await box.pending()
    finally:
        await client.close()


def _row(entry: OutboxEntry, rejected: bool) -> tuple[str, ...]:
    request = entry.request
    row = (entry.task_id, request.subject, iso(entry.created_at), request.idempotency_key or "")
    return (*row, shorten(entry.error or "")) if rejected else row


def _entry_dict(entry: OutboxEntry) -> dict[str, object]:
    return {
        "task_id": entry.task_id,
        "created_at": entry.created_at,
        "request": request_out(entry.request),
        "error": entry.error,
    }
