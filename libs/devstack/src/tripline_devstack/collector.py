"""A real OTLP/HTTP trace receiver on 127.0.0.1 that keeps the spans it receives: the stand-in
for an OpenTelemetry collector in `make dev` (which prints each finished trace as one line) and
in the tests (which read the traces the real processes sent)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tripline_devstack.probes import free_port

TRACES_PATH = "/v1/traces"
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind is not None else None


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it; IDs in W3C hex, times in Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    """Each link's (trace ID, span ID)."""
    status: str
    """`unset`, `ok` or `error`."""

    @property
    def is_root(self) -> bool:
        """True for a span without a parent: the start of its trace."""
        return not self.parent_span_id


@dataclass(frozen=True)
class ReceivedExport:
    """One POST as it arrived (kept with `keep_exports`): its path, its headers and its body,
    gzip undone."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class TraceSummary:
    """A finished trace in a line: its root span, how long the whole trace took (first start to
    last end, across processes), how many spans it has and from which services."""

    trace_id: str
    root: ReceivedSpan
    duration_ms: float
    span_count: int
    services: tuple[str, ...]
    spans: tuple[ReceivedSpan, ...]
    """Every span of the trace received by then, in arrival order."""

    def line(self) -> str:
        """`<root span> (<service>) <ms> ms, <n> spans [services] trace=<id>`."""
        services = ", ".join(self.services)
        spans = "1 span" if self.span_count == 1 else f"{self.span_count} spans"
        return (
            f"{self.root.name} ({self.root.service}) {self.duration_ms:.1f} ms, "
            f"{spans} [{services}] trace={self.trace_id}"
        )


def decode_spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Every span of an OTLP export request, with its resource's `service.name`."""
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=_KINDS.get(span.kind, str(span.kind)),
                        service=service,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        status={0: "unset", 1: "ok", 2: "error"}.get(span.status.code, "unset"),
                    )
                )
    return spans


@dataclass
class _Trace:
    spans: list[ReceivedSpan] = field(default_factory=list)
    last_received: float = 0.0
    reported: bool = False


class DevTraceCollector:
    """`start()` listens on 127.0.0.1:`port` (a free one by default) for OTLP/HTTP exports
    (protobuf, plain or gzip) at `/v1/traces`; `stop()` closes it. Point a process at it with
    `OTEL_EXPORTER_OTLP_ENDPOINT=<endpoint>`. As a context manager it is started and stopped
    around the block.

    Spans are kept by trace (`spans`, `trace`, `wait_for`). With `on_trace`, a trace that has
    its root span and received nothing for `quiet_seconds` is summarised once (`TraceSummary`):
    spans from several processes arrive in their own batches, so "finished" means quiet.
    `keep_summarised=False` drops a trace's spans once it is summarised, and any of its spans
    that arrive later, so that a receiver running for days (`make dev`) holds only the traces
    not yet finished. `delay` makes every answer that many seconds late (a slow collector);
    anything it cannot decode is answered 400 and described in `errors`. `keep_exports=True`
    also keeps every POST as it arrived (`exports`), for a test comparing two exporters.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        on_trace: Callable[[TraceSummary], None] | None = None,
        quiet_seconds: float = 2.0,
        keep_summarised: bool = True,
        delay: float = 0.0,
        keep_exports: bool = False,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.on_trace = on_trace
        self.quiet_seconds = quiet_seconds
        self.keep_summarised = keep_summarised
        self.delay = delay
        self.errors: list[str] = []
        self.keep_exports = keep_exports
        self.exports: list[ReceivedExport] = []
        self.requests = 0
        self._traces: dict[str, _Trace] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        """The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the SDK appends `/v1/traces`)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Listen (returns once the socket is bound)."""
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if collector.delay:
                    time.sleep(collector.delay)
                status, payload = collector._receive(
                    self.path,
                    self.headers.get("Content-Type", ""),
                    self.headers.get("Content-Encoding", ""),
                    body,
                    dict(self.headers.items()),
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # The processes' logs are the ones that matter.

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        ]
        if self.on_trace is not None:
            self._threads.append(
                threading.Thread(target=self._report_quiet_traces, name="otlp-traces", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> DevTraceCollector:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop listening (traces not yet quiet are not summarised)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)

    def _receive(
        self,
        path: str,
        content_type: str,
        encoding: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        problem = None
        if path.split("?")[0] != TRACES_PATH:
            problem = f"POST to {path}, not {TRACES_PATH}"
        elif "protobuf" not in content_type:
            problem = f"Content-Type {content_type!r}: only OTLP protobuf is taken here"
        if problem is None:
            try:
                if encoding.strip().lower() == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
            except (DecodeError, OSError) as error:
                problem = f"undecodable export: {error}"
        with self._lock:
            self.requests += 1
            if self.keep_exports:
                self.exports.append(ReceivedExport(path, headers or {}, body))
            if problem is not None:
                self.errors.append(problem)
                return HTTPStatus.BAD_REQUEST, problem.encode()
            now = time.monotonic()
            for span in decode_spans(request):
                kept = self._traces.setdefault(span.trace_id, _Trace())
                if kept.reported and not self.keep_summarised:
                    continue  # A straggler of a trace already summarised and dropped.
                kept.spans.append(span)
                kept.last_received = now
        return HTTPStatus.OK, ExportTraceServiceResponse().SerializeToString()

    def _report_quiet_traces(self) -> None:
        assert self.on_trace is not None
        while not self._stopping.wait(min(0.25, self.quiet_seconds)):
            for summary in self._take_quiet(time.monotonic()):
                self.on_trace(summary)

    def _take_quiet(self, now: float) -> list[TraceSummary]:
        summaries = []
        with self._lock:
            for trace_id, kept in self._traces.items():
                if kept.reported or now - kept.last_received < self.quiet_seconds:
                    continue
                root = next((span for span in kept.spans if span.is_root), None)
                if root is None:
                    continue  # Its start is in a process that has not sent it yet, or never will.
                kept.reported = True
                summaries.append(_summary(trace_id, root, kept.spans))
                if not self.keep_summarised:
                    kept.spans = []  # The entry stays, marked reported: stragglers are dropped.
        return summaries

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in arrival order."""
        with self._lock:
            return [span for kept in self._traces.values() for span in kept.spans]

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans received for `trace_id` (empty when none)."""
        with self._lock:
            kept = self._traces.get(trace_id)
            return list(kept.spans) if kept is not None else []

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """Block until `predicate(spans)` holds for every span received so far, and return them;
        raise TimeoutError after `timeout` seconds (a deadline for a failing test)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({f"{span.service}:{span.name}" for span in spans})
                raise TimeoutError(f"{len(spans)} spans received, the wait not satisfied: {names}")
            time.sleep(0.05)


def _summary(trace_id: str, root: ReceivedSpan, spans: list[ReceivedSpan]) -> TraceSummary:
    services = tuple(dict.fromkeys(span.service for span in sorted(spans, key=_start)))
    first = min(span.start_ns for span in spans)
    last = max(span.end_ns for span in spans)
    return TraceSummary(
        trace_id=trace_id,
        root=root,
        duration_ms=(last - first) / 1e6,
        span_count=len(spans),
        services=services,
        spans=tuple(spans),
    )


def _start(span: ReceivedSpan) -> int:
    return span.start_ns
