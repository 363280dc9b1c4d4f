"""Server spans of the edge middleware, with a real app and an in-memory exporter (`spans`):
one per request, named by the route template, continuing the caller's W3C trace; none for
probes, /metrics and the documents; log lines carry the span's IDs; a collector that is down
costs requests nothing and its lost spans are counted."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from tripline_common.platform import init_tracing

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def server_spans(recorded: list[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in recorded if span.kind is SpanKind.SERVER]


async def test_a_request_makes_one_server_span_named_by_its_route(
    spans, build_app, app_client
) -> None:
    async with app_client(build_app()) as client:
        response = await client.get(
            "/v1/items/missing",
            headers={"X-Request-ID": "rid-span-1", "User-Agent": "tests/1.0"},
        )
    assert response.status_code == 404
    [span] = server_spans(spans.finished())
    assert span.name == "GET /v1/items/missing"
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/v1/items/missing",
        "url.scheme": "http",
        "http.route": "/v1/items/missing",
        "http.response.status_code": 404,
        "server.address": "testserver",
        "client.address": "127.0.0.1",
        "user_agent.original": "tests/1.0",
        "tripline.request_id": "rid-span-1",
    }
    assert span.status.status_code is StatusCode.UNSET  # A 4xx is not the server's error.
    assert span.parent is None


async def test_a_path_no_route_matches_is_named_by_its_method_alone(
    spans, build_app, app_client
) -> None:
    async with app_client(build_app()) as client:
        assert (await client.get("/v1/nowhere/42")).status_code == 404
    [span] = server_spans(spans.finished())
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})


async def test_an_incoming_traceparent_is_continued(spans, build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        response = await client.post(
            "/v1/items",
            json={"name": "a", "quantity": 1},
            headers={
                "traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01",
                "tracestate": "vendor=1",
            },
        )
    assert response.status_code == 201
    [span] = server_spans(spans.finished())
    assert span.name == "POST /v1/items"
    assert format(span.context.trace_id, "032x") == PARENT_TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN
    assert span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "1"


async def test_an_unhandled_error_marks_the_span_as_failed(spans, build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        assert (await client.get("/v1/items/boom")).status_code == 500
    [span] = server_spans(spans.finished())
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.attributes["http.response.status_code"] == 500
    assert [event.name for event in span.events] == ["exception"]


async def test_probes_metrics_and_the_documents_make_no_spans(spans, build_app, app_client) -> None:
    async with app_client(build_app()) as client:
        for path in ("/livez", "/readyz", "/startupz", "/metrics", "/docs", "/redoc"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs/static/swagger-ui.css")).status_code == 200
    assert server_spans(spans.finished()) == []


async def test_log_lines_inside_a_request_carry_its_trace_and_span_ids(
    spans, build_app, app_client, capsys
) -> None:
    async with app_client(build_app(log_format="json")) as client:
        response = await client.get(
            "/v1/items/missing", headers={"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}
        )
    request_id = response.headers["x-request-id"]
    [span] = server_spans(spans.finished())
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    [access] = [line for line in lines if line["event"] == "request"]
    assert access["request_id"] == request_id
    assert access["trace_id"] == PARENT_TRACE == format(span.context.trace_id, "032x")
    assert access["span_id"] == format(span.context.span_id, "016x")
    outside = [line for line in lines if line["event"] in ("started", "stopped")]
    assert outside and all("trace_id" not in line for line in outside)


def dropped(text: str) -> dict[str, float]:
    [family] = [
        f for f in text_string_to_metric_families(text) if f.name.endswith("trace_spans_dropped")
    ]
    return {s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_collector_that_is_down_fails_no_request_and_its_spans_are_counted(
    build_app, app_client
) -> None:
    tracing = init_tracing(
        "testapp",
        environ={
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{closed_port()}/v1/traces",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0.2",
            "OTEL_TRACES_SAMPLER": "always_on",
        },
    )
    assert tracing is not None
    try:
        async with app_client(build_app()) as client:
            before = dropped((await client.get("/metrics")).text)
            assert before.keys() == {"queue_full", "export_failed"}
            for _ in range(3):
                response = await client.post("/v1/items", json={"name": "a", "quantity": 1})
                assert response.status_code == 201
            tracing.flush()
            after = dropped((await client.get("/metrics")).text)
    finally:
        tracing.shutdown()
    assert after["export_failed"] - before["export_failed"] == 3
    assert after["queue_full"] == before["queue_full"]


class StuckExporter(SpanExporter):
    """An exporter whose first export waits until released: a collector that hangs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait()
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


async def test_a_hung_collector_blocks_no_request_and_spans_over_the_queue_are_counted(
    build_app, app_client
) -> None:
    exporter = StuckExporter()
    tracing = init_tracing(
        "testapp",
        environ={
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_BSP_MAX_QUEUE_SIZE": "2",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1",
        },
        exporter=exporter,
    )
    assert tracing is not None
    try:
        async with app_client(build_app()) as client:
            before = dropped((await client.get("/metrics")).text)
            for _ in range(10):
                response = await client.post("/v1/items", json={"name": "a", "quantity": 1})
                assert response.status_code == 201
            after = dropped((await client.get("/metrics")).text)
    finally:
        exporter.release.set()
        tracing.shutdown()
    # One span in the stuck export, two in the queue: at least seven had nowhere to go.
    assert after["queue_full"] - before["queue_full"] >= 7
    assert exporter.exported <= 3


async def test_the_app_starts_tracing_from_the_environment_and_flushes_it_when_it_stops(
    build_app, app_client, monkeypatch
) -> None:
    from tripline_common.platform.tracing import dropped_spans, tracing_enabled

    endpoint = f"http://127.0.0.1:{closed_port()}/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.2")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    before = dropped_spans()["export_failed"]
    async with app_client(build_app()) as client:
        assert tracing_enabled()
        assert (await client.get("/v1/items/missing")).status_code == 404
    # The lifespan's end sent the queued span (the collector is down: it is counted lost) and
    # switched tracing off.
    assert not tracing_enabled()
    assert dropped_spans()["export_failed"] == before + 1
