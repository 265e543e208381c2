"""Expense approval: a human decision arrives as a signal; a condition picks the branch.

::

    atp dev examples.workflows.expense:app
    atp workflow start expense.approve --input '{"amount": 120, "by": "ada"}'
    atp workflow signal RUN_ID manager.decision --payload '{"approved": true}'
    atp workflow get RUN_ID          # expense.pay ran, expense.reject was skipped

Without a decision within three days the wait times out and the run fails. The signal
can also come from any language through the REST API, or before the check has finished:
a signal sent early is kept until its step waits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from atp.sdk import App, Workflow

app = App("expense")

approval = Workflow("expense.approve", version=1)
check = approval.step("expense.check")
decision = approval.wait_signal("manager.decision", after=check, timeout=timedelta(days=3))
# A lambda over the parent's result (the signal payload) is turned into a JSON condition
# when the workflow is defined, so any process evaluates it; see docs/workflows.md.
approval.step("expense.pay", after=decision, when=lambda d: d["approved"] == True)  # noqa: E712
approval.step("expense.reject", after=decision, when=lambda d: d["approved"] != True)  # noqa: E712
app.workflow(approval)


@app.task("expense.check")
async def check_expense(input: dict[str, Any], parents: dict[str, Any]) -> dict[str, Any]:
    return {"within_policy": input["amount"] <= 500}


@app.task("expense.pay")
async def pay(input: dict[str, Any], parents: dict[str, Any]) -> str:
    return f"paid {input['amount']} to {input['by']}"


@app.task("expense.reject")
async def reject(input: dict[str, Any], parents: dict[str, Any]) -> str:
    note = parents["manager.decision"].get("note", "")
    return f"rejected: {note}"
