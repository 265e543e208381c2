"""User sign-up: fan-out after the account exists, fan-in to activate, a saga undo.

Run it with ``atp dev`` from the repository root, then start runs from another terminal::

    atp dev examples.workflows.signup:app
    atp workflow start user.signup --input '{"email": "ada@example.com"}'
    atp workflow get RUN_ID          # crm.sync fails twice, is retried, then succeeds

A failing ``users.activate`` (try ``{"email": "bounce@example.com"}``) fails the run and
runs ``crm.unsync``, the compensation of the CRM step that had succeeded.
"""

from __future__ import annotations

import logging
from typing import Any

from atp.core.context import current_task
from atp.core.errors import Fail
from atp.sdk import App, Workflow

app = App("signup")
log = logging.getLogger("signup")

signup = Workflow("user.signup", version=1)
create = signup.step("users.create")
mail = signup.step("mail.welcome", after=create)
crm = signup.step("crm.sync", after=create, compensate="crm.unsync", retries=3)
signup.step("users.activate", after=[mail, crm])  # fan-in: both must succeed
app.workflow(signup)


@app.task("users.create")
async def create_user(input: dict[str, Any], parents: dict[str, Any]) -> dict[str, Any]:
    """The first step gets the run's input; its result goes to its children."""
    return {"user_id": abs(hash(input["email"])) % 100_000, "email": input["email"]}


@app.task("mail.welcome")
async def welcome(input: dict[str, Any], parents: dict[str, Any]) -> str:
    user = parents["users.create"]
    log.info("welcome mail to %s", user["email"])
    return "sent"


@app.task("crm.sync")
async def sync_crm(input: dict[str, Any], parents: dict[str, Any]) -> str:
    """Flaky on purpose: the first two attempts fail, the step's retries absorb them."""
    if current_task().attempt <= 2:
        raise ConnectionError("CRM is having a moment")
    return f"crm-{parents['users.create']['user_id']}"


@app.task("crm.unsync")
async def unsync_crm(input: dict[str, Any], step: str, result: Any) -> None:
    """A compensation receives the run's input and the result of the step it undoes."""
    log.info("removing CRM record %s", result)


@app.task("users.activate")
async def activate(input: dict[str, Any], parents: dict[str, Any]) -> str:
    if input["email"].startswith("bounce@"):
        raise Fail("the address bounced")  # dead at once: the run fails, crm.unsync runs
    return "active"
