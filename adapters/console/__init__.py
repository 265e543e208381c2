"""The web console at ``/console/``: pages rendered on the server (Jinja2 and htmx) over
the same Operations and scopes as the REST API (ADR 0045)."""

from atp.adapters.console._app import PREFIX, install_console

__all__ = ["PREFIX", "install_console"]
