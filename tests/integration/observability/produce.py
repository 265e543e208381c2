"""Publish one task from a process of its own, traced; print the producer span as JSON.

``python produce.py STORE_URL SUBJECT``: the task goes to the store (no worker here, so
the consumer's scheduler forwards it); stdout gets {task_id, trace_id, span_id}.
"""

from __future__ import annotations

import asyncio
import json
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.core.service import PublishRequest, TaskService
from atp.core.settings import Settings
from atp.plugins.otel import OtelPlugin


async def main(store: str, subject: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(store=store, transport="memory://")
    manager = make_plugin_manager(settings, entry_points=False)
    manager.register(OtelPlugin(provider), "otel-test")
    async with Platform.build(settings, plugins=manager) as platform:
        (published,) = await TaskService(platform).publish([PublishRequest(subject)])
    (span,) = exporter.get_finished_spans()
    print(
        json.dumps(
            {
                "task_id": published.id,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "name": span.name,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
