"""Tracing for a process: the OpenTelemetry SDK, configured by the standard `OTEL_*` variables.

`init_tracing` reads the variables the way the OpenTelemetry SDK defines them (endpoint,
headers, protocol, timeout, sampler and its argument, resource attributes, service name,
`OTEL_SDK_DISABLED`, the batch processor's `OTEL_BSP_*`). With no endpoint configured it
installs nothing: code calling the OpenTelemetry API gets its no-op tracer, no thread runs and
no span is kept. Otherwise spans go through a bounded `BatchSpanProcessor` (never blocks a
request or a job: a full queue drops the oldest span) to an OTLP/HTTP exporter; spans dropped
that way or lost to a failed export are counted (`dropped_spans`, exported by
`metrics.TracingCollector` as `tripline_<component>_trace_spans_dropped_total`).

The process's global provider is set once, to a provider whose tracers start their spans on
whatever `init_tracing` installed last: the API caches a tracer per name at first use, so the
tests, which install a provider per app, still see every span.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.re import parse_env_headers
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    from opentelemetry.util._decorator import _AgnosticContextManager

DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_RATIO = 0.1
"""One trace in ten is kept, unless the caller's `traceparent` says it sampled the trace
(parent-based): docs/operations.md, "Tracing"."""
SHUTDOWN_SECONDS = 2.0
"""How long a process waits, at exit, for its last spans to be sent."""
DROP_REASONS = ("queue_full", "export_failed")

_SAMPLERS = {
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
}
_TRUE = {"true", "1", "yes", "on"}


class TracingConfigError(ValueError):
    """An `OTEL_*` variable this process cannot honour: refused at start-up."""


@dataclass(frozen=True)
class TracingConfig:
    """What the `OTEL_*` variables ask for (`tracing_config`)."""

    endpoint: str
    headers: dict[str, str]
    timeout: float
    sampler: str
    ratio: float
    resource: dict[str, str]
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    schedule_delay_millis: float = 5000

    def build_sampler(self) -> Sampler:
        """The SDK sampler named by `sampler`, with `ratio` for the ratio-based ones."""
        root: Sampler = {
            "always_on": ALWAYS_ON,
            "always_off": ALWAYS_OFF,
        }.get(self.sampler.removeprefix("parentbased_"), TraceIdRatioBased(self.ratio))
        return ParentBased(root) if self.sampler.startswith("parentbased_") else root

    def root_bound(self) -> int | None:
        """For the ratio-based samplers, the bound a new trace's ID is kept under (the SDK's
        `TraceIdRatioBased.bound`: kept when `trace_id & TRACE_ID_LIMIT < bound`); else None."""
        if self.sampler.removeprefix("parentbased_") != "traceidratio":
            return None
        return TraceIdRatioBased.get_bound_for_rate(self.ratio)


def _get(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of `names` set to something other than blanks (the SDK ignores empty ones)."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _number(environ: Mapping[str, str], name: str, default: float, *, low: float) -> float:
    raw = _get(environ, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise TracingConfigError(f"{name}={raw!r} is not a number") from None
    if value < low:
        raise TracingConfigError(f"{name}={raw!r} must be at least {low:g}")
    return value


def _resource_attributes(raw: str | None) -> dict[str, str]:
    """`OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas, values percent-encoded."""
    attributes: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TracingConfigError(f"OTEL_RESOURCE_ATTRIBUTES: {item.strip()!r} is not key=value")
        attributes[key.strip()] = urllib.parse.unquote(value.strip())
    return attributes


def tracing_config(
    environ: Mapping[str, str],
    service_name: str,
    *,
    service_version: str | None = None,
    environment: str | None = None,
    endpoint_required: bool = True,
) -> TracingConfig | None:
    """What the `OTEL_*` variables in `environ` ask for; None when tracing is off.

    Off when `OTEL_SDK_DISABLED` is true or when neither `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    (used as is) nor `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) is set (unless
    `endpoint_required` is False: an exporter of the caller's own needs none). Raises
    `TracingConfigError` for what cannot be honoured: the `grpc` protocol (its exporter is not
    installed), an unknown sampler, a ratio outside [0, 1].
    """
    if (_get(environ, "OTEL_SDK_DISABLED") or "").lower() in _TRUE:
        return None
    endpoint = _get(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if endpoint is None:
        base = _get(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
        if base is None and endpoint_required:
            return None
        endpoint = f"{base.rstrip('/')}/v1/traces" if base is not None else ""
    protocol = _get(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol not in (None, "http/protobuf"):
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported (the "
            "grpc exporter is not installed); point the endpoint at the collector's OTLP/HTTP "
            "port (4318)"
        )
    sampler = (_get(environ, "OTEL_TRACES_SAMPLER") or DEFAULT_SAMPLER).lower()
    if sampler not in _SAMPLERS:
        raise TracingConfigError(
            f"OTEL_TRACES_SAMPLER={sampler!r}: use one of {', '.join(sorted(_SAMPLERS))}"
        )
    ratio = _number(environ, "OTEL_TRACES_SAMPLER_ARG", DEFAULT_RATIO, low=0.0)
    if ratio > 1:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={ratio:g} must be between 0 and 1")
    headers = _get(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    resource = _resource_attributes(_get(environ, "OTEL_RESOURCE_ATTRIBUTES"))
    resource.setdefault("service.name", service_name)
    if service_version is not None:
        resource.setdefault("service.version", service_version)
    if environment is not None:
        resource.setdefault("deployment.environment.name", environment)
    resource["service.name"] = _get(environ, "OTEL_SERVICE_NAME") or resource["service.name"]
    timeout_name = (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
        if _get(environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        else "OTEL_EXPORTER_OTLP_TIMEOUT"
    )
    queue = int(_number(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, low=1))
    return TracingConfig(
        endpoint=endpoint,
        headers=dict(parse_env_headers(headers or "", liberal=True)),
        # Seconds, as the Python SDK reads it.
        timeout=_number(environ, timeout_name, 10.0, low=0.001),
        sampler=sampler,
        ratio=ratio,
        resource=resource,
        max_queue_size=queue,
        max_export_batch_size=min(
            queue, int(_number(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, low=1))
        ),
        schedule_delay_millis=_number(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000, low=1),
    )


@dataclass
class _Drops:
    """Spans the process lost, by reason; read by `metrics.TracingCollector` at scrape time."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, reason: str, count: int) -> None:
        with self.lock:
            self.counts[reason] += count


_drops = _Drops()


def dropped_spans() -> dict[str, int]:
    """Spans lost since the process started, by reason (`queue_full`, `export_failed`)."""
    with _drops.lock:
        return dict(_drops.counts)


class _CountingExporter(SpanExporter):
    """The real exporter, with every span of a failed export counted as dropped."""

    def __init__(self, inner: SpanExporter, queue: _QueueGauge) -> None:
        self.inner = inner
        self.queue = queue

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.queue.taken(len(spans))
        try:
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            _drops.add("export_failed", len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _QueueGauge:
    """How many spans wait in the batch processor's queue, kept beside it: the SDK drops the
    oldest span when a span ends while the queue holds `capacity` (and only logs it, once in a
    while), so a span ending then is counted as one dropped. The count can run a batch ahead
    of the queue for the instant between the processor taking a batch and handing it to the
    exporter, so when the queue is nearly full it may count a drop that did not happen."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.waiting = 0
        self.lock = threading.Lock()

    def added(self) -> None:
        with self.lock:
            if self.waiting >= self.capacity:
                _drops.add("queue_full", 1)
            else:
                self.waiting += 1

    def taken(self, count: int) -> None:
        with self.lock:
            self.waiting = max(0, self.waiting - count)


class _CountingBatchProcessor(BatchSpanProcessor):
    def __init__(self, exporter: SpanExporter, config: TracingConfig) -> None:
        self.queue = _QueueGauge(config.max_queue_size)
        super().__init__(
            _CountingExporter(exporter, self.queue),
            max_queue_size=config.max_queue_size,
            schedule_delay_millis=config.schedule_delay_millis,
            max_export_batch_size=config.max_export_batch_size,
        )

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self.queue.added()
        super().on_end(span)


class _HashedResource(Resource):
    """The process's resource, hashed once. The OTLP encoder groups each batch's spans by
    resource, hashing it for a span whose resource or scope differs from the span before's
    (every span of a hot read: its server and SQL spans alternate), and `Resource.__hash__`
    JSON-encodes the attributes every time: ~4.4 µs each (docs/performance.md)."""

    def __init__(self, attributes: Mapping[str, str]) -> None:
        super().__init__(attributes)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


class _HandedIds(RandomIdGenerator):
    """The SDK's random IDs, except a new trace's ID that `start_server_span` drew to decide
    its sampling: handed over (per thread) for the span the SDK starts next to carry."""

    def __init__(self) -> None:
        self._handed = threading.local()

    def hand_over(self, trace_id: int) -> None:
        self._handed.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._handed, "trace_id", None)
        if trace_id is None:
            return super().generate_trace_id()
        self._handed.trace_id = None
        return trace_id


class _Switch(trace.TracerProvider):
    """The process's global provider: its tracers start spans on the SDK provider installed
    now, or on the API's no-op tracer when none is."""

    def __init__(self) -> None:
        self.current: TracerProvider | None = None
        self.generation = 0
        self.ids = _HandedIds()
        self.root_bound: int | None = None
        """Set while the installed sampler keeps a new trace by its ID's ratio alone."""

    def install(self, provider: TracerProvider | None, root_bound: int | None = None) -> None:
        self.current = provider
        self.root_bound = root_bound if provider is not None else None
        self.generation += 1

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _SwitchedTracer(
            self, (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        )


_NO_OP = trace.NoOpTracer()


class DelegatingTracer(trace.Tracer):
    """A tracer that hands each span to the tracer `delegate` picks for it, or makes none (the
    invalid, non-recording span) when it picks None; the span is the delegate's own."""

    def delegate(self, context: Context | None) -> trace.Tracer | None:
        """The tracer to start a span in `context` with (None: no span)."""
        raise NotImplementedError

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        tracer = self.delegate(context)
        if tracer is None:
            return trace.INVALID_SPAN
        return tracer.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _AgnosticContextManager[trace.Span]:
        tracer = self.delegate(context)
        if tracer is None:
            # The caller's current span stays current: nothing was started.
            return nullcontext(trace.INVALID_SPAN)  # type: ignore[return-value]
        return tracer.start_as_current_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        )


class _SwitchedTracer(DelegatingTracer):
    def __init__(self, switch: _Switch, args: tuple[Any, ...]) -> None:
        self.switch = switch
        self.args = args
        self.generation = -1
        self.tracer: trace.Tracer = _NO_OP

    def delegate(self, context: Context | None) -> trace.Tracer:
        switch = self.switch
        if self.generation != switch.generation:
            current = switch.current
            self.tracer = current.get_tracer(*self.args) if current is not None else _NO_OP
            self.generation = switch.generation
        return self.tracer


_switch = _Switch()
_switch_lock = threading.Lock()


def _install_switch() -> None:
    with _switch_lock:
        if trace.get_tracer_provider() is not _switch:
            trace.set_tracer_provider(_switch)


def tracing_enabled() -> bool:
    """True while a provider installed by `init_tracing` records spans (one attribute read)."""
    return _switch.current is not None


def switched_tracer_provider() -> trace.TracerProvider | None:
    """While tracing is on, the process's provider whose tracers follow whichever provider
    `init_tracing` installed last (what long-lived instrumentation should hold); else None."""
    return _switch if _switch.current is not None else None


_server_tracer = _switch.get_tracer("tripline.web")
_NO_PARENT = Context()


def start_server_span(name: str, parent: Context | None) -> trace.Span:
    """A request's SERVER span (tracing on), a child of `parent`, the context the caller
    propagated, or else the root of a new trace.

    A new trace under a ratio sampler (the default) is decided here, by the same rule and from
    the same random trace ID the SDK would draw: nine in ten are dropped, and making their
    non-recording span ourselves skips the SDK's span machinery, a cost every request paid
    (docs/performance.md). A kept one is started by the SDK with the ID drawn here, so its
    sampler sees the same ID and keeps it too."""
    bound = _switch.root_bound
    if parent is None and bound is not None:
        ids = _switch.ids
        trace_id = RandomIdGenerator.generate_trace_id(ids)
        if trace_id & TraceIdRatioBased.TRACE_ID_LIMIT >= bound:
            context = trace.SpanContext(trace_id, ids.generate_span_id(), is_remote=False)
            return trace.NonRecordingSpan(context)
        ids.hand_over(trace_id)
    return _server_tracer.start_span(
        name, context=_NO_PARENT if parent is None else parent, kind=SpanKind.SERVER
    )


class Tracing:
    """An installed tracing pipeline: its provider, and how to stop it."""

    def __init__(self, provider: TracerProvider, config: TracingConfig) -> None:
        self.provider = provider
        self.config = config

    def flush(self) -> bool:
        """Export what is queued now (blocks: for tests and shutdown)."""
        return self.provider.force_flush()

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Send what is queued and stop, waiting `timeout` seconds at most (a collector that is
        down must not hold the process's exit), and stop recording spans."""
        if _switch.current is self.provider:
            _switch.install(None)
        done = threading.Thread(target=self.provider.shutdown, name="otel-shutdown", daemon=True)
        done.start()
        done.join(timeout)


def init_tracing(
    service_name: str,
    *,
    service_version: str | None = None,
    environment: str | None = None,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
) -> Tracing | None:
    """Install tracing for this process from the `OTEL_*` variables; None when they leave it off.

    `environ` defaults to the process environment. `exporter` replaces the OTLP exporter (the
    tests' hook: an `InMemorySpanExporter`); with it, no endpoint is needed. Raises
    `TracingConfigError` for settings that cannot be honoured, so the process refuses to start.
    With nothing configured, whatever an earlier call installed stays (tests install their own
    before the app starts).
    """
    config = tracing_config(
        os.environ if environ is None else environ,
        service_name,
        service_version=service_version,
        environment=environment,
        endpoint_required=exporter is None,
    )
    if config is None:
        return None
    if exporter is None:
        from tripline_common.platform.otlp_encoding import InPlaceOTLPSpanExporter

        exporter = InPlaceOTLPSpanExporter(
            endpoint=config.endpoint, headers=config.headers, timeout=config.timeout
        )
    provider = TracerProvider(
        sampler=config.build_sampler(),
        resource=_HashedResource(config.resource),
        shutdown_on_exit=False,  # Its exit hook waits 30 s for a collector: ours is bounded.
        id_generator=_switch.ids,
    )
    provider.add_span_processor(_CountingBatchProcessor(exporter, config))
    _install_switch()
    _switch.install(provider, config.root_bound())
    return Tracing(provider, config)


EXEMPLAR_LABEL = "trace_id"
"""The label of the latency histograms' exemplars (`trace_exemplar`): the name a Grafana
Prometheus data source's `exemplarTraceIdDestinations` must give (docs/operations.md)."""


def trace_exemplar() -> dict[str, str] | None:
    """The exemplar of a duration observed now: `{"trace_id": <W3C hex>}` of the sampled span
    recording now; None outside one, and at once (one attribute read) while tracing is off.

    Only a sampled span's trace reaches the collector, so only it is worth linking to. Its 40
    characters are well inside the 128 OpenMetrics allows an exemplar's labels.
    """
    if _switch.current is None:
        return None
    span = trace.get_current_span()
    context = span.get_span_context()
    if not (context.trace_flags.sampled and span.is_recording()):
        return None
    return {EXEMPLAR_LABEL: trace.format_trace_id(context.trace_id)}


def current_trace_ids() -> tuple[str, str] | None:
    """The W3C hex trace and span IDs of the span recording now, None outside one."""
    if _switch.current is None:
        return None
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    context = span.get_span_context()
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
