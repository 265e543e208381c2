"""Mount the console on the API's FastAPI app: its pages under ``/console/`` and its
files (our script and styles, the vendored libraries) under ``/console/static/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from atp.adapters.console import _dead, _login, _overview, _runs, _schedules, _tasks, _workers
from atp.adapters.console._render import PREFIX

__all__ = ["PREFIX", "install_console"]

STATIC = Path(__file__).with_name("static")
PAGES = (_login, _overview, _tasks, _dead, _schedules, _runs, _workers)


def install_console(app: FastAPI) -> None:
    """Serve the console on ``app``, which holds ``state.operations`` and ``state.guard``."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    for page in PAGES:
        app.include_router(page.router, prefix=PREFIX)

    async def bare() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    app.add_api_route(PREFIX, bare, include_in_schema=False)
