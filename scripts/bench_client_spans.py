"""The CPU cost of a SQL client span: one parameterised `fetchval` on one asyncpg connection.

Runs the same loop with client spans off, and on (`instrument_clients`) outside a trace, under
an unsampled span and under a sampled one, spans going to a batch processor whose exporter
drops them (the export itself is otel-core's cost, not this one's). Prints the median CPU time
per statement of each. Reads DATABASE_URL (any database: the query touches no table).
docs/operations.md ("Spans of the clients") records the figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence

import asyncpg
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from tripline_common.data import asyncpg_dsn, instrument_clients, uninstrument_clients

STATEMENTS = 3000
RUNS = 7


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def cpu_per_statement(connection: asyncpg.Connection) -> float:
    """Microseconds of this process's CPU per statement (the batch thread's included)."""
    start = time.process_time()
    for number in range(STATEMENTS):
        await connection.fetchval("SELECT $1::int + 1", number)
    return (time.process_time() - start) / STATEMENTS * 1e6


async def main() -> None:
    connection = await asyncpg.connect(asyncpg_dsn(os.environ["DATABASE_URL"]))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    sampled = provider.get_tracer("bench")
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("bench")
    figures: dict[str, list[float]] = {
        "off": [],
        "on, outside a trace": [],
        "on, under an unsampled span": [],
        "on, under a sampled span": [],
    }
    for _ in range(RUNS):
        figures["off"].append(await cpu_per_statement(connection))
        instrument_clients(provider)
        figures["on, outside a trace"].append(await cpu_per_statement(connection))
        with unsampled.start_as_current_span("request"):
            figures["on, under an unsampled span"].append(await cpu_per_statement(connection))
        with sampled.start_as_current_span("request"):
            figures["on, under a sampled span"].append(await cpu_per_statement(connection))
        uninstrument_clients()
    await connection.close()
    provider.shutdown()
    for name, values in figures.items():
        print(f"{name:30} {statistics.median(values):6.1f} µs CPU per statement")


if __name__ == "__main__":
    asyncio.run(main())
