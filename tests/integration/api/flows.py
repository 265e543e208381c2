"""Workflow definitions and schedule bodies shared by the schedule and workflow API tests."""

from __future__ import annotations

from typing import Any


def definition(name: str, version: int = 1, subject: str = "orders.ship") -> dict[str, Any]:
    """A run waits for signal ``go``, then publishes ``subject`` (undone by ``orders.unship``)."""
    return {
        "name": name,
        "version": version,
        "steps": [
            {"name": "wait", "kind": "signal", "signal": "go", "timeout": 3600},
            {"name": "ship", "subject": subject, "after": ["wait"], "compensate": "orders.unship"},
        ],
    }


def schedule(name: str, **fields: Any) -> dict[str, Any]:
    """A schedule body: hourly in Paris, publishing to ``orders.report``."""
    return {
        "name": name,
        "expression": "0 * * * *",
        "subject": "orders.report",
        "payload": {"kind": "hourly"},
        "tz": "Europe/Paris",
        **fields,
    }
