"""What atp puts on its spans: messaging semantic-convention attributes and the producer link."""

from __future__ import annotations

from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Link, SpanContext

from atp.core.model import Task

__all__ = ["NO_ATTRIBUTES", "SYSTEM", "links_to", "task_attributes"]

SYSTEM = "atp"
NO_ATTRIBUTES = BoundedAttributes(immutable=True)


def task_attributes(task: Task, operation: str, worker: str | None = None) -> dict[str, Any]:
    """Messaging semantic-convention attributes of a task, plus atp's own (``atp.*``);
    ``worker`` is the consumer's ``messaging.client.id``."""
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": task.subject,
        "messaging.message.id": task.id,
    }
    if worker is not None:
        attributes["messaging.client.id"] = worker
    if task.attempt:
        attributes["atp.task.attempt"] = task.attempt
    if task.schedule is not None:
        attributes["atp.schedule"] = task.schedule
    if task.workflow_run is not None:
        attributes["atp.workflow.run_id"] = task.workflow_run
        attributes["atp.workflow.step"] = task.step or ""
    return attributes


def links_to(producer: SpanContext) -> tuple[Link, ...]:
    """The consumer span's link to the producer span, as the messaging conventions ask."""
    if not producer.is_valid:
        return ()
    if not _PLAIN_LINK:
        return (Link(producer, NO_ATTRIBUTES),)
    link = object.__new__(Link)  # what Link() builds, without its two __init__ calls
    link._context = producer
    link._attributes = NO_ATTRIBUTES
    return (link,)


_PLAIN_LINK = vars(Link(INVALID_SPAN_CONTEXT, NO_ATTRIBUTES)) == {
    "_context": INVALID_SPAN_CONTEXT,
    "_attributes": NO_ATTRIBUTES,
}
"""Whether a Link is still just its context and attributes (as in SDK 1.x)."""
