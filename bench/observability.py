"""What the observability plugins cost: end-to-end throughput with both on, against off.

Runs alternate (off, metrics, on, sampled, off...) so drift of a noisy machine hits
every mode alike; each ratio is the median of the per-round ratios. Spans go through a
BatchSpanProcessor to an exporter that drops them: span creation, propagation and
batching are measured, the network is not; ``sampled`` keeps 10% of traces
(``parentbased_traceidratio``). Metrics go to a registry of their own, scraped once.
Besides each ratio, the median per-round extra time per task over off (µs): it stays
comparable when the core gets faster, which a ratio does not.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry, generate_latest

from atp.core.platform import Platform
from atp.core.plugins import make_plugin_manager
from atp.plugins.otel import OtelPlugin
from atp.plugins.prometheus import PrometheusPlugin
from atp.sdk.app import App
from bench import embedded, raw

SQLITE = "sqlite:///{dir}/bench.db"
MEMORY = "memory://"


class Discard(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def suite(repeat: int, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Throughput in each of ``MODES``, and its ratio to off, for both stores."""
    figures = {
        "raw memory transport: publish+fetch+ack (msg/s)": {
            "rate": statistics.median(
                raw.memory_transport_roundtrip(count, embedded.BATCH) for _ in range(repeat)
            )
        }
    }
    for label, store in (("memory store", MEMORY), ("sqlite+memory", SQLITE)):
        runs: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(repeat):
            for mode in MODES:
                runs[mode].append(asyncio.run(end_to_end(store, count, concurrency, mode)))
        result = {mode: statistics.median(rates) for mode, rates in runs.items()}
        for mode in MODES[1:]:
            pairs = list(zip(runs["off"], runs[mode], strict=True))
            result[f"{mode}/off"] = statistics.median(b / a for a, b in pairs)
            result[f"{mode} µs/task over off"] = statistics.median(
                1e6 / b - 1e6 / a for a, b in pairs
            )
        figures[f"end to end {label}, observability plugins (tasks/s)"] = result
    return figures


MODES = ("off", "metrics", "on", "sampled")
"""Both plugins off; Prometheus only; both, every trace sampled; both, 10% sampled."""


async def end_to_end(store: str, count: int, concurrency: int, mode: str) -> float:
    """Tasks/s through one in-process worker and the scheduler, in one of ``MODES``."""
    with tempfile.TemporaryDirectory() as folder:
        settings = embedded.settings_for(store, Path(folder), concurrency)
        settings = settings.replace(extra={"prometheus": {"port": 0}})
        manager = make_plugin_manager(settings, entry_points=False)
        sampler = ParentBased(TraceIdRatioBased(0.1)) if mode == "sampled" else ALWAYS_ON
        provider = TracerProvider(sampler=sampler)
        registry = CollectorRegistry()
        if mode != "off":
            manager.register(PrometheusPlugin(registry), "bench-prometheus")
        if mode in ("on", "sampled"):
            provider.add_span_processor(BatchSpanProcessor(Discard()))
            manager.register(OtelPlugin(provider), "bench-otel")
        platform = Platform.build(settings, plugins=manager, local=True)
        done = asyncio.Event()
        finished: list[None] = []
        app = App("bench")

        @app.task("bench.noop")
        async def noop(i: int) -> None:
            finished.append(None)
            if len(finished) == count:
                done.set()

        run = await embedded._drive(platform, app, count, 0.0, done, [])
        generate_latest(registry)  # one scrape, as Prometheus would
        provider.shutdown()
        return run.rate
