"""Spans recorded in memory for a test: `recording_spans()` (a context manager) and the `spans`
fixture built on it. An SDK tracer provider with an in-memory exporter is installed through
`init_tracing`'s test hook, the client spans (SQL, Redis, pub/sub, webhooks) are turned on with
it, and both are removed afterwards (no global state left behind)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from tripline_common.data import instrument_clients, uninstrument_clients
from tripline_common.platform import Tracing, init_tracing
from tripline_common.platform.tracing import switched_tracer_provider


class SpanRecorder:
    """The spans the process finished while the test ran, and a tracer for a test's own spans."""

    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self.exporter = exporter

    @property
    def tracer(self) -> Tracer:
        """A tracer of the recording provider: a test's parent spans (a "request", a "job")."""
        return self.tracing.provider.get_tracer("tests")

    def finished(self) -> list[ReadableSpan]:
        """Every span ended so far, oldest first (the batch queue is flushed first)."""
        self.tracing.flush()
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        """The finished spans called `name`."""
        return by_name(self.finished(), name)

    def starting(self, prefix: str) -> list[ReadableSpan]:
        """The finished spans whose name starts with `prefix` ("publish", "deliver", "SELECT")."""
        return [span for span in self.finished() if span.name.startswith(prefix)]

    def clear(self) -> None:
        self.tracing.flush()
        self.exporter.clear()


@contextmanager
def recording_spans(sampler: str = "always_on") -> Iterator[SpanRecorder]:
    """Record every span (`OTEL_TRACES_SAMPLER=<sampler>`: by default each one is sampled,
    parent or not) with the client spans on, for the `with` block; build apps inside it."""
    exporter = InMemorySpanExporter()
    tracing = init_tracing("test", environ={"OTEL_TRACES_SAMPLER": sampler}, exporter=exporter)
    assert tracing is not None
    provider = switched_tracer_provider()
    assert provider is not None
    instrument_clients(provider)
    try:
        yield SpanRecorder(tracing, exporter)
    finally:
        tracing.shutdown()
        # Off again (an app built inside turned them on too): the next test starts from a
        # process where nothing is wrapped.
        uninstrument_clients()


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    """`recording_spans()` for the whole test; build the app after asking for this."""
    with recording_spans() as recorder:
        yield recorder


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The finished spans called `name`, in the order they ended."""
    return [span for span in spans if span.name == name]
