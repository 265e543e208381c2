"""``atp publish --file`` on a real Redis: batches, the report, and a safe re-run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from atp.adapters.cli import cli
from atp.core.platform import Platform
from atp.core.settings import Settings

pytestmark = pytest.mark.integration


def stored(url: str) -> int:
    async def count() -> int:
        async with Platform.build(Settings(store=url, transport=url)) as platform:
            return sum((await platform.store.counts()).values())

    return asyncio.run(count())


def test_a_file_with_bad_lines_publishes_the_rest_and_re_runs_safely(
    url: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"subject": "orders.close", "payload": {"n": n}, "idempotency_key": f"k{n}"})
        for n in range(1200)
    ]
    lines[7], lines[600], lines[1199] = "{", '{"subject": "a..b"}', '{"subject": 3}'
    source = tmp_path / "tasks.jsonl"
    source.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    args = ["--store", url, "--transport", url, "publish", "--file", str(source)]
    first = runner.invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 1, first.output
    failed = (tmp_path / "tasks.failed.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["_failed"]["line"] for line in failed) == [8, 601, 1200]
    assert stored(url) == 1197
    again = runner.invoke(cli, args, catch_exceptions=False)
    assert "(1197 existing" in again.stderr
    assert stored(url) == 1197
