"""Finished spans in memory: the process's SDK tracer provider for tests, read per test.

Product code uses only the OpenTelemetry API (`trace.get_tracer`), which resolves through the
global provider; OpenTelemetry lets that be set once per process. So the provider is installed
once (or, when setup code already installed an SDK provider, reused), one in-memory exporter is
attached to it, and each test starts from an empty exporter (`span_exporter` fixture).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def installed_exporter() -> InMemorySpanExporter:
    """The process's in-memory exporter, attached to the global SDK provider (set up once)."""
    global _exporter
    if _exporter is None:
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider), "another provider was set globally"
        _exporter = InMemorySpanExporter()
        # Synchronous export: a span is readable as soon as it ends.
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return _exporter


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The finished spans called `name`, in the order they ended."""
    return [span for span in spans if span.name == name]
