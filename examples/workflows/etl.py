"""ETL: extract once, transform 100 partitions in parallel (fan-out), load once (fan-in).

::

    atp dev examples.workflows.etl:app --concurrency 32
    atp workflow start etl.daily --input '{"day": "2026-11-30"}'
    atp workflow runs

Each partition is its own task with its own retries; the load step starts only when all
100 succeeded and receives their 100 results. Kill ``atp dev`` mid-run and start it
again: the run continues, and no step is enqueued twice.
"""

from __future__ import annotations

from typing import Any

from atp.core.context import current_task
from atp.sdk import App, Workflow

PARTITIONS = 100

app = App("etl")

etl = Workflow("etl.daily", version=1)
extract = etl.step("etl.extract")
transforms = [
    etl.step("etl.transform", name=f"part-{i:03d}", after=extract, retries=5, timeout="2m")
    for i in range(PARTITIONS)
]
etl.step("etl.load", after=transforms)
app.workflow(etl)


@app.task("etl.extract")
async def extract_rows(input: dict[str, Any], parents: dict[str, Any]) -> dict[str, Any]:
    return {"day": input["day"], "partitions": PARTITIONS}


@app.task("etl.transform")
async def transform(input: dict[str, Any], parents: dict[str, Any]) -> int:
    """A partition's result must stay small: the load step receives all 100 of them."""
    partition = int((current_task().step or "part-0").split("-")[1])
    return partition * 10


@app.task("etl.load")
async def load(input: dict[str, Any], parents: dict[str, Any]) -> int:
    return sum(parents.values())
