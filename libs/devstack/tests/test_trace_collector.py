"""`DevTraceCollector`: a real OTLP/HTTP receiver that the OpenTelemetry SDK's own exporter can
send to, which keeps spans by trace and summarises a trace once it is quiet."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind

from tripline_devstack import DevTraceCollector, ReceivedSpan, TraceSummary


def _provider(collector: DevTraceCollector, service: str, **exporter: object) -> TracerProvider:
    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{collector.endpoint}/v1/traces", **exporter)
        )  # type: ignore[arg-type]
    )
    return provider


@pytest.fixture
def collector() -> Iterator[DevTraceCollector]:
    server = DevTraceCollector()
    server.start()
    yield server
    server.stop()


def test_the_sdk_exporter_delivers_spans_with_their_tree_service_and_attributes(
    collector: DevTraceCollector,
) -> None:
    provider = _provider(collector, "ingest")
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("POST /v1/telemetry", kind=SpanKind.SERVER) as root,
        tracer.start_as_current_span(
            "INSERT", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql", "rows": 3}
        ),
    ):
        pass
    provider.shutdown()

    trace_id = format(root.get_span_context().trace_id, "032x")
    spans = {span.name: span for span in collector.trace(trace_id)}
    assert set(spans) == {"POST /v1/telemetry", "INSERT"}
    assert spans["POST /v1/telemetry"].is_root and spans["POST /v1/telemetry"].kind == "server"
    child = spans["INSERT"]
    assert child.parent_span_id == spans["POST /v1/telemetry"].span_id
    assert (child.service, child.kind) == ("ingest", "client")
    assert child.attributes == {"db.system": "postgresql", "rows": 3}
    assert child.end_ns >= child.start_ns > 0
    assert collector.errors == []


def test_gzip_exports_and_links_are_decoded(collector: DevTraceCollector) -> None:
    provider = _provider(collector, "worker", compression=Compression.Gzip)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("first") as first:
        pass
    with tracer.start_as_current_span("retry", links=[Link(first.get_span_context())]) as retry:
        pass
    provider.shutdown()

    [received] = collector.trace(format(retry.get_span_context().trace_id, "032x"))
    first_context = first.get_span_context()
    assert received.links == [
        (format(first_context.trace_id, "032x"), format(first_context.span_id, "016x"))
    ]
    assert collector.errors == []


def test_what_is_not_an_otlp_protobuf_export_is_refused_and_described(
    collector: DevTraceCollector,
) -> None:
    url = f"{collector.endpoint}/v1/traces"
    json_body = httpx.post(url, content=b"{}", headers={"Content-Type": "application/json"})
    garbage = httpx.post(
        url,
        content=gzip.compress(b"\xff\xff\xff"),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert (json_body.status_code, garbage.status_code) == (400, 400)
    assert len(collector.errors) == 2 and collector.spans == []


def test_a_trace_is_summarised_once_when_it_has_its_root_and_has_gone_quiet() -> None:
    summaries: list[TraceSummary] = []
    arrived = threading.Event()

    def keep(summary: TraceSummary) -> None:
        summaries.append(summary)
        arrived.set()

    collector = DevTraceCollector(on_trace=keep, quiet_seconds=0.3)
    collector.start()
    try:
        api, worker = _provider(collector, "api"), _provider(collector, "worker")
        with (
            api.get_tracer("t").start_as_current_span("POST /v1/trips") as root,
            worker.get_tracer("t").start_as_current_span("process job"),
        ):
            pass
        orphan = worker.get_tracer("t").start_span(
            "child of a span never sent",
            context=_remote_parent(),
        )
        orphan.end()
        api.shutdown()
        worker.shutdown()
        assert arrived.wait(10)
    finally:
        collector.stop()

    [summary] = summaries
    # However long it stays quiet, the orphan's trace has no root: it is never summarised (and
    # the other one never twice).
    assert collector._take_quiet(float("inf")) == []
    assert summary.trace_id == format(root.get_span_context().trace_id, "032x")
    assert (summary.root.name, summary.span_count) == ("POST /v1/trips", 2)
    assert summary.services == ("api", "worker")
    assert summary.duration_ms >= 0
    assert summary.line().startswith("POST /v1/trips (api) ")
    assert summary.line().endswith(f"2 spans [api, worker] trace={summary.trace_id}")


def _remote_parent() -> object:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(1))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def test_a_slow_collector_answers_late_but_keeps_everything() -> None:
    collector = DevTraceCollector(delay=0.5)
    collector.start()
    try:
        provider = _provider(collector, "api")
        started = time.monotonic()
        with provider.get_tracer("t").start_as_current_span("slow"):
            pass  # A simple processor exports as the span ends: the exporter waits the delay.
        assert time.monotonic() - started >= 0.5
        provider.shutdown()
        assert [span.name for span in collector.spans] == ["slow"]
    finally:
        collector.stop()


def test_a_collector_that_drops_summarised_traces_keeps_only_unfinished_ones() -> None:
    summaries: list[TraceSummary] = []
    arrived = threading.Event()

    def keep(summary: TraceSummary) -> None:
        summaries.append(summary)
        arrived.set()

    collector = DevTraceCollector(on_trace=keep, quiet_seconds=0.3, keep_summarised=False)
    collector.start()
    try:
        provider = _provider(collector, "api")
        tracer = provider.get_tracer("t")
        with (
            tracer.start_as_current_span("GET /v1/trips") as root,
            tracer.start_as_current_span("SELECT tripline"),
        ):
            pass
        assert arrived.wait(10)
        [summary] = summaries
        assert [span.name for span in summary.spans] == ["SELECT tripline", "GET /v1/trips"]
        trace_id = format(root.get_span_context().trace_id, "032x")
        assert collector.trace(trace_id) == []

        # A span of that trace arriving late is dropped too; a trace not yet finished is kept.
        tracer.start_span("late", context=_remote_child_of(root)).end()
        tracer.start_span("unfinished", context=_remote_parent()).end()
        provider.shutdown()
        assert collector.trace(trace_id) == []
        assert [span.name for span in collector.spans] == ["unfinished"]
    finally:
        collector.stop()


def _remote_child_of(span: object) -> object:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan

    return trace.set_span_in_context(NonRecordingSpan(span.get_span_context()))  # type: ignore[attr-defined]


def test_the_line_of_a_one_span_trace_says_one_span() -> None:
    root = ReceivedSpan(
        "ab" * 16, "cd" * 8, "", "GET", "server", "api", 0, 2_500_000, {}, [], "unset"
    )
    summary = TraceSummary("ab" * 16, root, 2.5, 1, ("api",), (root,))
    assert summary.line() == f"GET (api) 2.5 ms, 1 span [api] trace={'ab' * 16}"
