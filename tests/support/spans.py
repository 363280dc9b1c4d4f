"""Client spans captured in memory, for tests of the spans in any test folder.

`captured_client_spans()` installs an SDK tracer provider of its own (never the global one,
which a process can set once) with an in-memory exporter, turns the client spans on with it
(`instrument_clients`) and off again afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import Tracer

from tripline_common.data import instrument_clients, uninstrument_clients


@dataclass
class CapturedSpans:
    """The provider the client spans use, a tracer of it for parent spans, what was exported."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer("tests")

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name.startswith(prefix)]

    def clear(self) -> None:
        self.exporter.clear()


@contextmanager
def captured_client_spans(sampler: Sampler | None = None) -> Iterator[CapturedSpans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_clients(provider)
    try:
        yield CapturedSpans(provider, exporter)
    finally:
        uninstrument_clients()
        provider.shutdown()
