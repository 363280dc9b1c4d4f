"""The CPU cost of a request's RED metrics with its exemplar: `HttpMetrics.record` (one counter
increment, one latency observation and `trace_exemplar`).

Runs the same loop with tracing off (no exemplar: the baseline), and on outside a span, under
an unsampled span and under a sampled one (the only case that leaves an exemplar). Prints the
median CPU time per request of each. Needs no database. docs/operations.md ("Exemplars")
records the figures.
"""

from __future__ import annotations

import statistics
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from tripline_common.platform import CommonSettings, init_tracing
from tripline_common.platform.metrics import HttpMetrics, create_registry

REQUESTS = 50_000
RUNS = 7


def cpu_per_request(metrics: HttpMetrics) -> float:
    """Microseconds of CPU per recorded request."""
    start = time.process_time()
    for number in range(REQUESTS):
        metrics.record("/v1/trips/{trip_id}", "GET", 200, 0.001 + (number % 7) * 0.01)
    return (time.process_time() - start) / REQUESTS * 1e6


def main() -> None:
    settings = CommonSettings(_env_file=None, service_name="bench")
    metrics = HttpMetrics(settings, create_registry())
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("bench")
    figures: dict[str, list[float]] = {
        "tracing off": [],
        "on, outside a span": [],
        "on, under an unsampled span": [],
        "on, under a sampled span": [],
    }
    for _ in range(RUNS):
        figures["tracing off"].append(cpu_per_request(metrics))
        tracing = init_tracing(
            "bench", environ={"OTEL_TRACES_SAMPLER": "always_on"}, exporter=InMemorySpanExporter()
        )
        assert tracing is not None
        figures["on, outside a span"].append(cpu_per_request(metrics))
        with unsampled.start_as_current_span("request"):
            figures["on, under an unsampled span"].append(cpu_per_request(metrics))
        with tracing.provider.get_tracer("bench").start_as_current_span("request"):
            figures["on, under a sampled span"].append(cpu_per_request(metrics))
        tracing.shutdown()
    for name, values in figures.items():
        print(f"{name:30} {statistics.median(values):5.2f} µs CPU per request")


if __name__ == "__main__":
    main()
