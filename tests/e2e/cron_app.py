"""The app the cron end-to-end test runs under ``atp dev``: a one-second schedule."""

from __future__ import annotations

from atp.sdk.app import App

app = App("cron-e2e")


@app.cron("* * * * * *", subject="cron.beat", name="beat", misfire="all")
async def beat() -> None:
    """Nothing to do: the test counts the tasks the ticks created."""
