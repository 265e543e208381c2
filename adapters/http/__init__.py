"""The REST API (FastAPI): ``/v1`` tasks and dead letters, health, and plugin mounts.

Errors are RFC 9457 problem documents whose ``type`` is ``urn:atp:problem:<slug>``, one
slug per ``atp.core.errors`` class; the OpenAPI document is served at ``/openapi.json``.
"""

from atp.adapters.http._app import create_app
from atp.adapters.http._problems import PROBLEM_TYPE

__all__ = ["PROBLEM_TYPE", "create_app"]
