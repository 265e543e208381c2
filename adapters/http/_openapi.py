"""The OpenAPI document of one server: the models' schemas, with this server's limits.

The models state core's limits and the default settings; a server may set its own
(``max_batch``, ``max_page``, ``max_delay``), and ``/openapi.json`` must say what this
server refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from atp.adapters._auth.config import ServerSettings
from atp.adapters.http._models import COMPONENTS, BatchIn
from atp.core.platform import Platform
from atp.core.service import MAX_BATCH, MAX_PAGE

__all__ = ["server_openapi"]

Document = dict[str, Any]


def server_openapi(
    app: FastAPI, server: ServerSettings, platform: Platform
) -> Callable[[], Document]:
    """``app.openapi`` for ``server``: built once, with its limits and the batch body."""
    build = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is None:
            app.openapi_schema = with_limits(build(), server, platform)
        return app.openapi_schema

    return openapi


def with_limits(document: Document, server: ServerSettings, platform: Platform) -> Document:
    """``document`` stating ``server``'s batch and page sizes, the platform's
    ``max_delay``, and no 422 (the server answers invalid input with a 400 problem); it
    gains ``BatchIn``, which its route validates itself (after checking its size)."""
    settings = platform.settings
    schemas = document["components"]["schemas"]
    batch = BatchIn.model_json_schema(ref_template=COMPONENTS + "{model}")
    for name, schema in batch.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["BatchIn"] = batch
    most = min(server.max_batch, MAX_BATCH)
    _bound(batch["properties"]["tasks"], "array", maxItems=most)
    _bound(schemas["PurgeIn"]["properties"]["ids"], "array", maxItems=most)
    for model in ("TaskIn", "RequeueIn"):
        _bound(schemas[model]["properties"]["delay"], "number", maximum=settings.max_delay)
    # A run_at at most max_delay ahead of when the document was built stays so later.
    latest = platform.clock.now() + settings.max_delay
    _bound(schemas["TaskIn"]["properties"]["run_at"], "number", maximum=latest)
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)  # invalid input is a 400 problem
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "limit" and parameter["in"] == "query":
                    parameter["schema"]["maximum"] = min(server.max_page, MAX_PAGE)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _bound(schema: Document, kind: str, **limits: float) -> None:
    """Set ``limits`` on ``schema``, or on its ``anyOf`` branch of type ``kind``."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == kind:
            branch.update(limits)
