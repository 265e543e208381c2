"""The Transport on NATS JetStream: one stream for every task, durable pull consumers per group.

A task's subject maps one to one onto a NATS subject under the configured prefix
(``orders.close`` -> ``atp.orders.close``), so a worker's pattern (``orders.*``, ``>``) is
its consumer's filter subject. The stream keeps every message for ``max_age`` (limits
retention), acked or not: each group's consumer keeps its own position, so every group gets
every message, and a server restart cannot drop what it acked (with interest retention
nats-server 2.9 acked publishes during its shutdown and then dropped them; see ADR 0013).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from atp.core.errors import BackendUnavailable, InvalidInput
from atp.core.model import Task
from atp.core.ports import Capabilities, Clock, Consumer, Transport
from atp.core.subjects import validate_pattern, validate_subject
from atp.plugins.nats._config import NatsConfig
from atp.plugins.nats._link import Link, Outgoing, consumer_name
from atp.plugins.nats.consumer import NatsConsumer

__all__ = ["NatsTransport", "message_id"]

log = logging.getLogger("atp.plugins.nats")


def message_id(task: Task) -> str:
    """The ``Nats-Msg-Id`` of one publication of ``task``: its id, attempt and due time.

    A retried publish of the same envelope carries the same id and is dropped by the
    server inside ``duplicate_window``. A retry, a requeue or a task put back by a
    stopping worker is a new publication (its attempt or ``run_at`` changed) and must
    not be dropped, so the bare task id would not do.
    """
    return f"{task.id}:{task.attempt}:{task.run_at!r}"


class NatsTransport:
    """A Transport on NATS JetStream (``nats://``); connects on first use.

    Capabilities: native delay (``nak`` with a delay), deduplication inside the
    stream's duplicate window, lease extension (``in_progress``) and lease recovery
    (redelivery after ``ack_wait``, the lease); durable with file storage. JetStream
    keeps no copy of terminated messages: the store's DEAD state is the dead-letter
    queue. Priorities are not honoured: each consumer is first in, first out.
    """

    def __init__(self, config: NatsConfig, clock: Clock) -> None:
        self.config = config
        self.capabilities = Capabilities(
            delay=True,
            deduplication=True,
            lease_extension=True,
            dead_letters=False,
            durable=config.storage == "file",
            lease_recovery=True,
            shared=True,
            lease=config.ack_wait,
        )
        self._clock = clock
        self._link = Link(config, clock)
        self._consumers: set[NatsConsumer] = set()
        self._closed = False

    async def publish(self, tasks: Sequence[Task]) -> None:
        """Publish every task's id and return once the server acked each one.

        The body is the id alone: workers read the envelope from the store (ADR 0023).

        Raises InvalidInput, publishing nothing, if a subject is invalid; BackendUnavailable
        if an ack is missing or negative (some of the batch may have been stored, and
        publishing the batch again is safe). All acks are awaited together.
        """
        self._check_open()
        if not tasks:
            return
        messages: list[Outgoing] = [
            (
                self.config.subject(validate_subject(task.subject)),
                task.id.encode(),
                message_id(task),
            )
            for task in tasks
        ]
        await self._link.publish(messages)

    async def consume(self, pattern: str, group: str) -> Consumer:
        """Join ``group``'s durable consumer for ``pattern``, creating it if needed."""
        self._check_open()
        validate_pattern(pattern)
        if not isinstance(group, str) or not group:
            raise InvalidInput(f"group must be a non-empty string, got {group!r}")
        name = consumer_name(group, pattern)
        consumer = NatsConsumer(self._link, self._clock, name, pattern, group)
        await consumer.open()
        self._consumers.add(consumer)
        return consumer

    async def close(self) -> None:
        """Close every consumer (each gives back what it holds) and the connection.

        Later calls raise BackendUnavailable."""
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.close()
        self._consumers.clear()
        await self._link.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable("nats transport is closed")


_TRANSPORT: type[Transport] = NatsTransport
