"""The CPU cost of encoding finished spans to an OTLP export request: the SDK's encoder
(`opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans`) beside ours
(`tripline_common.platform.otlp_encoding.encode_spans`), in interleaved rounds of the same
batches, each serialised as the exporter sends it.

The spans are real SDK spans of the shapes Tripline exports: a hot read (its server span with
ten attributes and its SQL statement's span) and an upload (its server span, SQL statements,
COPY and COMMIT, Redis commands and the enqueue's `send`: ten spans), under the process's
resource, in batches of 512 (the batch processor's default). Prints the median CPU time per
span of each encoder and their ratio, and checks both requests are equal.
docs/performance.md ("What tracing costs") records the figures. Needs no database.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tripline_common.platform import init_tracing
from tripline_common.platform.otlp_encoding import encode_spans as our_encode

BATCH = 512
SERVER: dict[str, str | int] = {
    "http.request.method": "GET",
    "url.path": "/v1/trips/5b0c9a4e-2f7d-4c1e-9d57-3e8f1a2b6c90",
    "url.scheme": "http",
    "tripline.request_id": "0f4c2a9e8b7d4e61a3c5d2b1e0f9a8c7",
    "server.address": "api.tripline.internal",
    "server.port": 8000,
    "client.address": "10.42.0.17",
    "user_agent.original": "tripline-mobile/4.2.1 (Android 14; Pixel 8)",
    "http.response.status_code": 200,
    "http.route": "/v1/trips/{trip_id}",
}


def _sql(operation: str, text: str, collection: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.system": "postgresql",
        "db.operation.name": operation,
        "db.query.text": text,
        "db.namespace": "tripline",
        "server.address": "127.0.0.1",
        "server.port": 5432,
    }
    if collection:
        attributes["db.collection.name"] = collection
    return attributes


def _redis(command: str) -> dict[str, Any]:
    return {
        "db.system.name": "redis",
        "db.operation.name": command,
        "db.namespace": "0",
        "server.address": "127.0.0.1",
        "server.port": 6379,
    }


READ_SQL = _sql(
    "SELECT",
    "SELECT t.id, t.status, t.origin, t.destination, t.eta FROM trips t WHERE t.id = $1 "
    "AND t.owner_id = $2",
)
SEND = {
    "messaging.system": "arq",
    "messaging.operation.type": "send",
    "messaging.destination.name": "arq:queue",
    "messaging.message.id": "batch:5b0c9a4e",
}
INSERT = "INSERT INTO telemetry_batches (id, device_id, received_at) VALUES ($1, $2, $3)"
UPLOAD_CHILDREN: list[tuple[str, str, SpanKind, dict[str, Any]]] = [
    ("tripline.clients", "EVALSHA", SpanKind.CLIENT, _redis("EVALSHA")),
    ("tripline.sql", "SELECT tripline", SpanKind.CLIENT, _sql("SELECT", "SELECT 1 FROM devices")),
    ("tripline.sql", "BEGIN", SpanKind.CLIENT, _sql("BEGIN", "BEGIN")),
    ("tripline.sql", "INSERT tripline", SpanKind.CLIENT, _sql("INSERT", INSERT)),
    (
        "tripline.sql",
        "COPY telemetry_events",
        SpanKind.CLIENT,
        _sql("COPY", "COPY telemetry_events FROM STDIN", "telemetry_events"),
    ),
    ("tripline.sql", "UPDATE tripline", SpanKind.CLIENT, _sql("UPDATE", "UPDATE devices SET x")),
    ("tripline.sql", "COMMIT", SpanKind.CLIENT, _sql("COMMIT", "COMMIT")),
    ("tripline.clients", "SET", SpanKind.CLIENT, _redis("SET")),
    ("tripline.clients", "send arq:queue", SpanKind.PRODUCER, SEND),
]


def make_spans(reads: int, uploads: int) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """Finished spans of `reads` hot reads and of `uploads` uploads, made by the SDK under the
    resource `init_tracing` gives a process."""
    exporter = InMemorySpanExporter()
    tracing = init_tracing(
        "tripline-api",
        service_version="1.4.0",
        environment="production",
        environ={"OTEL_TRACES_SAMPLER": "always_on", "OTEL_BSP_MAX_QUEUE_SIZE": "100000"},
        exporter=exporter,
    )
    assert tracing is not None
    provider = tracing.provider
    server = provider.get_tracer("tripline.web")
    for _ in range(reads):
        with server.start_as_current_span("GET /v1/trips/{trip_id}", kind=SpanKind.SERVER) as span:
            span.set_attributes(SERVER)
            provider.get_tracer("tripline.sql").start_span(
                "SELECT tripline", kind=SpanKind.CLIENT, attributes=READ_SQL
            ).end()
    provider.force_flush()
    read_spans = list(exporter.get_finished_spans())
    exporter.clear()
    upload: dict[str, str | int] = {**SERVER, "http.request.method": "POST"}
    upload["url.path"] = "/v1/telemetry"
    upload.update({"http.route": "/v1/telemetry", "http.response.status_code": 202})
    for number in range(uploads):
        with server.start_as_current_span("POST /v1/telemetry", kind=SpanKind.SERVER) as span:
            span.set_attributes(upload)
            for scope, name, kind, attributes in UPLOAD_CHILDREN:
                child = provider.get_tracer(scope).start_span(
                    name, kind=kind, attributes=attributes
                )
                if number % 50 == 0 and name == "COPY telemetry_events":
                    child.set_status(StatusCode.ERROR, "UniqueViolationError")
                child.end()
    provider.force_flush()
    upload_spans = list(exporter.get_finished_spans())
    tracing.shutdown()
    return read_spans, upload_spans


def batches(spans: Sequence[ReadableSpan]) -> list[Sequence[ReadableSpan]]:
    return [spans[start : start + BATCH] for start in range(0, len(spans), BATCH)]


def cpu_per_span(
    encode: Callable[[Sequence[ReadableSpan]], Any], batched: list[Sequence[ReadableSpan]]
) -> float:
    """Microseconds of CPU per span to encode and serialise every batch."""
    start = time.process_time()
    for batch in batched:
        encode(batch).SerializePartialToString()
    return (time.process_time() - start) / sum(map(len, batched)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--spans", type=int, default=5120, help="spans of each shape per round")
    args = parser.parse_args()
    reads, uploads = make_spans(args.spans // 2, args.spans // 10)
    print(f"{len(reads)} hot-read spans, {len(uploads)} upload spans, batches of {BATCH}")
    for name, spans in (("hot read", reads), ("upload", uploads)):
        batched = batches(spans)
        for batch in batched:
            # The comparison is only worth making between equal requests.
            assert our_encode(batch) == sdk_encode(batch), f"{name}: the requests differ"
        sdk_figures: list[float] = []
        our_figures: list[float] = []
        ratios: list[float] = []
        for number in range(args.rounds):
            pair = [(sdk_encode, sdk_figures), (our_encode, our_figures)]
            for encode, figures in pair if number % 2 == 0 else pair[::-1]:
                figures.append(cpu_per_span(encode, batched))
            ratios.append(sdk_figures[-1] / our_figures[-1])
        sdk, ours = statistics.median(sdk_figures), statistics.median(our_figures)
        print(
            f"{name:9} SDK encode_spans {sdk:6.2f} µs/span   ours {ours:6.2f} µs/span   "
            f"ratio {sdk / ours:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)"
        )


if __name__ == "__main__":
    main()
