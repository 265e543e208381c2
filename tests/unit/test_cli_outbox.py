"""``atp outbox ls`` and ``atp outbox flush`` over a real outbox file and SQLite store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from atp.adapters.cli import cli
from atp.core.clock import SystemClock
from atp.core.service import PublishRequest
from atp.sdk.outbox import Outbox


def kept(path: Path, *requests: PublishRequest) -> list[str]:
    async def run() -> list[str]:
        box = Outbox(path, SystemClock())
        try:
            return [p.id for p in await box.put(box.prepare(requests))]
        finally:
            await box.close()

    return asyncio.run(run())


def test_ls_then_flush_delivers_and_lists_the_refused(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    good, bad = kept(path, PublishRequest("orders.close", 1), PublishRequest("orders..x", 2))
    env = {"ATP_OUTBOX": str(path)}
    runner = CliRunner()

    listed = runner.invoke(cli, ["outbox", "ls", "--json"], env=env, catch_exceptions=False)
    body = json.loads(listed.stdout)
    assert body["pending"] == 2
    assert [e["task_id"] for e in body["entries"]] == [good, bad]

    flushed = runner.invoke(cli, ["outbox", "flush", "--json"], env=env, catch_exceptions=False)
    assert flushed.exit_code == 0, flushed.output
    assert json.loads(flushed.stdout) == {"delivered": 1, "pending": 0}
    task = runner.invoke(cli, ["task", "get", good], env=env, catch_exceptions=False)
    assert task.exit_code == 0, task.output

    refused = runner.invoke(cli, ["outbox", "ls", "--rejected"], env=env)
    assert bad in refused.stdout
    assert "InvalidInput" in refused.stdout


def test_without_an_outbox_setting_it_says_so(store_url: str) -> None:
    result = CliRunner().invoke(cli, ["outbox", "ls"])
    assert result.exit_code == 2
    assert "no outbox is set" in result.output
