"""The `spans` fixture: an SDK tracer provider with an in-memory exporter, installed through
`init_tracing`'s test hook for one test and removed after it (no global state left behind)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tripline_common.data import uninstrument_clients
from tripline_common.platform import Tracing, init_tracing


class SpanRecorder:
    """The spans the process finished while the test ran."""

    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self.exporter = exporter

    def finished(self) -> list[ReadableSpan]:
        """Every span ended so far, oldest first (the batch queue is flushed first)."""
        self.tracing.flush()
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def clear(self) -> None:
        self.tracing.flush()
        self.exporter.clear()


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    """Every span sampled (`always_on`), kept in memory; build the app after asking for this."""
    exporter = InMemorySpanExporter()
    tracing = init_tracing("test", environ={"OTEL_TRACES_SAMPLER": "always_on"}, exporter=exporter)
    assert tracing is not None
    try:
        yield SpanRecorder(tracing, exporter)
    finally:
        tracing.shutdown()
        # An app built in the test turned the client spans on (`create_app`): off again, so
        # the next test starts from a process where nothing is wrapped.
        uninstrument_clients()


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The finished spans called `name`, in the order they ended."""
    return [span for span in spans if span.name == name]
