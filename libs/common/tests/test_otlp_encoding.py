"""`otlp_encoding`: our in-place OTLP encoder gives the request the SDK's `encode_spans` gives,
field for field and in the same order, and our exporter sends, returns, logs and counts what
the SDK's `OTLPSpanExporter` does, to a real OTLP/HTTP receiver."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from tripline_common.platform import init_tracing
from tripline_common.platform.otlp_encoding import InPlaceOTLPSpanExporter, encode_spans
from tripline_devstack import DevTraceCollector

EVERY_TYPE: dict[str, Any] = {
    "str": "GET",
    "empty str": "",
    "int": 8000,
    "negative int": -(2**63),
    "float": 0.25,
    "bool": True,
    "false": False,
    "strs": ["a", "b"],
    "ints": [1, 2, 3],
    "floats": [1.5, -0.0],
    "bools": [True, False],
    "empty": [],
    "strs with a gap": ["a", None, "c"],
}


def _remote_parent(sampled: bool, state: TraceState | None = None) -> Any:
    context = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
        trace_state=state,
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


def _link(number: int, *, remote: bool, **attributes: Any) -> Link:
    context = SpanContext(
        trace_id=0x1000 + number,
        span_id=0x2000 + number,
        is_remote=remote,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", f"link{number}")]),
    )
    return Link(context, attributes or None)


def _rich_spans() -> list[ReadableSpan]:
    """Spans of two resources (one with a schema URL), four scopes (versions, schema URLs,
    attributes), every kind, every status, remote and local parents with trace state and
    flags, events and links with attributes, and spans past their limits (dropped counts)."""
    finished = InMemorySpanExporter()
    api = TracerProvider(
        sampler=ALWAYS_ON,
        resource=Resource({"service.name": "api", "service.version": "1.2.3"}, "https://s/1.26"),
    )
    worker = TracerProvider(
        sampler=ALWAYS_ON,  # Kept under a parent that did not sample: its flags differ.
        resource=Resource({"service.name": "worker", "k8s.pod.name": "worker-1"}),
        span_limits=SpanLimits(
            max_span_attributes=3,
            max_events=2,
            max_links=1,
            max_event_attributes=1,
            max_link_attributes=1,
        ),
    )
    for provider in (api, worker):
        provider.add_span_processor(SimpleSpanProcessor(finished))
    web = api.get_tracer("tripline.web", "0.1", "https://opentelemetry.io/schemas/1.26.0")
    sql = api.get_tracer("tripline.sql")
    clients = api.get_tracer("tripline.clients", "2.0", attributes={"team": "trips", "n": 2})
    jobs = worker.get_tracer("tripline.worker", "3.1", "https://s/jobs", {"queue": "arq"})

    state = TraceState([("tripline", "r1"), ("other", "x")])
    with web.start_as_current_span(
        "GET /v1/trips/{trip_id}",
        context=_remote_parent(sampled=True, state=state),
        kind=SpanKind.SERVER,
        attributes=EVERY_TYPE,
        links=[_link(1, remote=True, why="retry", attempt=2), _link(2, remote=False)],
    ) as server:
        server.add_event("cache miss", {"key": "trip:1", "hits": [1, 2]})
        server.add_event("bare")
        sql.start_span("SELECT tripline", kind=SpanKind.CLIENT, attributes={"n": 1}).end()
        with clients.start_as_current_span("send", kind=SpanKind.PRODUCER) as send:
            send.set_status(Status(StatusCode.OK))
        with web.start_as_current_span("render") as render:
            render.set_status(Status(StatusCode.ERROR, "boom"))
            render.record_exception(ValueError("bad trip"))
        server.set_status(StatusCode.ERROR)  # Without a description.
    with jobs.start_as_current_span(
        "process_batch",
        context=_remote_parent(sampled=False),
        kind=SpanKind.CONSUMER,
        attributes={f"a{number}": number for number in range(6)},
        links=[_link(3, remote=True, a=1, b=2), _link(4, remote=True), _link(5, remote=False)],
    ) as job:
        for number in range(4):
            job.add_event(f"step {number}", {"x": number, "y": "two"})
        sql.start_span("interleaved: the api's resource again").end()
        jobs.start_span("local child").end()
    api.get_tracer("tripline.web", "0.1", "https://opentelemetry.io/schemas/1.26.0").start_span(
        "a root, its scope equal to an earlier one", kind=SpanKind.INTERNAL
    ).end()
    spans = list(finished.get_finished_spans())
    assert {span.kind for span in spans} == set(SpanKind)
    assert any(
        span.dropped_attributes and span.dropped_events and span.dropped_links for span in spans
    )
    return spans


def test_our_request_equals_the_sdks_for_every_kind_of_span_field_for_field_in_order() -> None:
    spans = _rich_spans()

    ours, sdk = encode_spans(spans), sdk_encode(spans)

    assert ours == sdk
    # Equal bytes: the same messages in the same order, empty sub-messages present alike.
    assert ours.SerializeToString() == sdk.SerializeToString()
    assert [len(group.scope_spans) for group in ours.resource_spans] == [3, 1]
    flags = [
        span.flags
        for group in ours.resource_spans
        for scope in group.scope_spans
        for span in scope.spans
    ]
    assert {0x100, 0x300} <= set(flags), "the remote-parent bits, as the SDK sets them"
    assert any(
        span.trace_state == "tripline=r1,other=x"
        for span in ours.resource_spans[0].scope_spans[0].spans
    )


def test_every_prefix_and_single_span_batch_encodes_as_the_sdks() -> None:
    spans = _rich_spans()
    for end in range(len(spans) + 1):
        assert (
            encode_spans(spans[:end]).SerializeToString()
            == sdk_encode(spans[:end]).SerializeToString()
        )
    for span in spans:
        assert encode_spans([span]) == sdk_encode([span])


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


def test_values_the_sdk_never_validated_are_encoded_or_left_out_as_the_sdk_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Attributes that reach the encoder without the SDK's checks (a `ReadableSpan` made by
    hand, a resource's or a scope's): mappings, nested sequences, bytes, subclasses, None, and
    values protobuf refuses, which are logged and left out of the request, not the whole batch."""
    attributes = {
        "mapping": {"a": 1, 2: ["x", {"deep": b"\x00\x01"}]},
        "nested": [[1, 2], ("t", 0.5), []],
        "bytes": b"\xff",
        "int enum": Level.HIGH,
        "str subclass": Name("n"),
        "none": None,
        "too big": 2**64,
        "not a value": object(),
        "bad in a list": ["ok", object()],
        "after them": "kept",
    }
    context = SpanContext(0xABC, 0xDEF, is_remote=False)
    spans = [
        ReadableSpan(
            name="by hand",
            context=context,
            parent=SpanContext(0xABC, 0x123, is_remote=True),
            resource=Resource({"r": ["x", "y"], "bad": object()}),
            attributes=attributes,
            events=[Event("e", attributes, timestamp=5)],
            links=[Link(SpanContext(0x1, 0x2, is_remote=False), attributes)],
            kind=SpanKind.CLIENT,
            status=Status(StatusCode.UNSET),
            start_time=1,
            end_time=2,
            instrumentation_scope=InstrumentationScope("", None, None, {"s": 1.0}),
        ),
        ReadableSpan(
            name="no scope", context=context, resource=Resource({}), start_time=3, end_time=4
        ),
    ]

    def lines() -> list[tuple[str, str]]:
        return [(record.name, record.getMessage()) for record in caplog.records]

    caplog.clear()  # The SDK's warnings about the event's and the link's attributes.
    sdk = sdk_encode(spans)
    sdk_lines = lines()
    caplog.clear()
    ours = encode_spans(spans)
    our_lines = lines()

    assert ours == sdk
    assert ours.SerializeToString() == sdk.SerializeToString()
    kept = [kv.key for kv in ours.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert kept == ["mapping", "nested", "bytes", "int enum", "str subclass", "none", "after them"]
    assert our_lines == sdk_lines
    assert sum("Failed to encode key too big" in line for _, line in sdk_lines) == 3


# The exporters' end to end comparison.

Scenario = Callable[[OTLPSpanExporter], SpanExportResult]


def _metric_points(reader: InMemoryMetricReader) -> list[tuple[str, dict[str, Any], Any]]:
    """Each point of the exporter's own metrics: name, attributes (less the instance's
    numbered name), and the value (a histogram's count: durations differ)."""
    points = []
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    attributes = {
                        k: v for k, v in point.attributes.items() if k != "otel.component.name"
                    }
                    value = getattr(point, "value", None)
                    points.append(
                        (metric.name, attributes, point.count if value is None else value)
                    )
    return sorted(points, key=repr)


@pytest.fixture
def receiver() -> Iterator[DevTraceCollector]:
    with DevTraceCollector(keep_exports=True) as collector:
        yield collector


def _run(
    exporter_class: type[OTLPSpanExporter],
    collector: DevTraceCollector,
    caplog: pytest.LogCaptureFixture,
    scenario: Scenario,
    **options: Any,
) -> tuple[Any, ...]:
    """What `scenario` gave with a fresh exporter of `exporter_class`: its result, what the
    receiver got, the exporter's log lines and its metrics."""
    reader = InMemoryMetricReader()
    options.setdefault("endpoint", f"{collector.endpoint}/v1/traces")
    exporter = exporter_class(
        headers={"api-key": "k1"}, timeout=5, meter_provider=MeterProvider([reader]), **options
    )
    collector.exports.clear()
    caplog.clear()
    try:
        result = scenario(exporter)
    finally:
        exporter.shutdown()
    lines = [
        (record.name, record.levelname, record.getMessage())
        for record in caplog.records
        if record.name.startswith("opentelemetry.exporter")
    ]
    return result, list(collector.exports), lines, _metric_points(reader)


def _export(spans: list[ReadableSpan]) -> Scenario:
    return lambda exporter: exporter.export(spans)


def _export_after_shutdown(spans: list[ReadableSpan]) -> Scenario:
    def scenario(exporter: OTLPSpanExporter) -> SpanExportResult:
        exporter.shutdown()
        return exporter.export(spans)

    return scenario


UNENCODABLE = ReadableSpan(
    name="a kind no exporter knows",
    context=SpanContext(0x1, 0x2, is_remote=False),
    kind="sideways",  # type: ignore[arg-type]
    resource=Resource({}),
)


@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("sent", {}),
        ("sent gzip", {"compression": Compression.Gzip}),
        ("refused by the receiver", {"path": "/v1/elsewhere"}),
        ("too large", {"max_request_size": 200}),
        ("after shutdown", {}),
        ("unencodable", {}),
    ],
)
def test_our_exporter_sends_returns_logs_and_counts_what_the_sdks_does(
    case: str,
    options: dict[str, Any],
    receiver: DevTraceCollector,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our `export` follows the pinned SDK's: this fails when a new SDK's `export` does
    something on one of these paths (a header, a log line, a metric, a result) that ours
    does not."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    spans = _rich_spans()
    scenario = {
        "after shutdown": _export_after_shutdown(spans),
        "unencodable": _export([*spans, UNENCODABLE]),
    }.get(case, _export(spans))
    path = options.pop("path", None)
    if path is not None:
        options["endpoint"] = f"{receiver.endpoint}{path}"

    with caplog.at_level(logging.DEBUG):
        sdk = _run(OTLPSpanExporter, receiver, caplog, scenario, **options)
        ours = _run(InPlaceOTLPSpanExporter, receiver, caplog, scenario, **options)

    assert ours == sdk
    result, exports, lines, metrics = ours
    expected = {
        "sent": SpanExportResult.SUCCESS,
        "sent gzip": SpanExportResult.SUCCESS,
    }.get(case, SpanExportResult.FAILURE)
    assert result is expected
    assert len(exports) == (1 if case in ("sent", "sent gzip", "refused by the receiver") else 0)
    if case.startswith("sent"):
        assert exports[0].headers["api-key"] == "k1"
        assert exports[0].headers.get("Content-Encoding") == ("gzip" if "gzip" in case else None)
    assert metrics or case == "after shutdown", "the exporter's metrics were recorded"
    assert lines or case.startswith("sent")


def test_a_process_with_an_endpoint_sends_its_spans_encoded_as_the_sdk_would(
    receiver: DevTraceCollector,
) -> None:
    """`init_tracing`'s exporter, end to end: the receiver gets the bytes the SDK's encoder
    makes of the spans the process finished."""
    tracing = init_tracing(
        "api",
        service_version="1.2.3",
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_TRACES_SAMPLER": "always_on",
        },
    )
    assert tracing is not None
    finished = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = tracing.provider.get_tracer("tripline.web")
    try:
        with tracer.start_as_current_span("GET /v1/trips/{trip_id}", kind=SpanKind.SERVER) as span:
            span.set_attributes(
                {"http.response.status_code": 200, "http.route": "/v1/trips/{trip_id}"}
            )
            tracer.start_span("SELECT tripline", kind=SpanKind.CLIENT).end()
        assert tracing.flush()
    finally:
        tracing.shutdown()

    spans = finished.get_finished_spans()
    assert len(spans) == 2
    assert [export.body for export in receiver.exports] == [sdk_encode(spans).SerializeToString()]
