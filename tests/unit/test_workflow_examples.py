"""The workflow examples in ``examples/workflows`` run as their docstrings say."""

from __future__ import annotations

from atp.core.settings import Settings
from atp.core.workflows import RunState, StepState
from atp.sdk.testing import TestPlatform
from examples.workflows import etl, expense, signup

SETTINGS = Settings(forward_interval=0.5, retry_base=0.5, retry_cap=2.0, concurrency=32)


async def test_signup_retries_the_crm_and_compensates_a_bounce() -> None:
    async with TestPlatform(signup.app, SETTINGS) as tp:
        good = await tp.client.start_workflow("user.signup", {"email": "ada@example.com"})
        bad = await tp.client.start_workflow("user.signup", {"email": "bounce@example.com"})
        await tp.run_until_idle()
        good, bad = await tp.client.get_run(good.id), await tp.client.get_run(bad.id)
    assert good.state is RunState.SUCCEEDED
    assert good.steps["crm.sync"].attempts == 3
    assert bad.state is RunState.FAILED
    assert bad.steps["crm.sync"].compensation is StepState.SUCCEEDED


async def test_expense_waits_for_the_manager() -> None:
    async with TestPlatform(expense.app, SETTINGS) as tp:
        run = await tp.client.start_workflow("expense.approve", {"amount": 120, "by": "ada"})
        await tp.run_until_idle(max_time=60)
        await tp.client.signal(run.id, "manager.decision", {"approved": False, "note": "no"})
        await tp.run_until_idle()
        run = await tp.client.get_run(run.id)
    assert run.state is RunState.SUCCEEDED
    assert run.steps["expense.pay"].state is StepState.SKIPPED
    assert run.steps["expense.reject"].result == "rejected: no"


async def test_etl_fans_out_a_hundred_and_loads_once() -> None:
    async with TestPlatform(etl.app, SETTINGS) as tp:
        run = await tp.client.start_workflow("etl.daily", {"day": "2026-11-30"})
        await tp.run_until_idle()
        run = await tp.client.get_run(run.id)
    assert run.state is RunState.SUCCEEDED
    assert run.result == {"etl.load": sum(i * 10 for i in range(100))}
