"""Client spans (SQL, Redis, pub/sub, webhooks): the switch, and the rule that they live in a trace.

Off by default: until `enable_client_spans` is called (by `tripline_common.data.
instrument_clients`, once a tracer provider is installed) `client_tracer()` is None and the
explicit client spans are skipped at the cost of one check. A client span is only made inside a
trace (a request's or a job's span is current): a statement or command outside one, such as the
worker's queue polling, would otherwise start a one-span trace of its own twice a second. SQL
and Redis spans, from which nothing propagates, are only made under a recorded (sampled) span.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Tracer, TracerProvider

from tripline_common.platform.tracing import DelegatingTracer

CLIENT_TRACER_NAME = "tripline.clients"

_tracer: Tracer | None = None


def enable_client_spans(tracer_provider: TracerProvider) -> None:
    """Turn on the explicit client spans, made with `tracer_provider`."""
    global _tracer
    _tracer = InTraceOnlyTracer(tracer_provider.get_tracer(CLIENT_TRACER_NAME))


def disable_client_spans() -> None:
    """Turn them off again (tests; a process never needs it)."""
    global _tracer
    _tracer = None


def client_tracer() -> Tracer | None:
    """The tracer of the explicit client spans, or None while they are off."""
    return _tracer


def in_trace(context: Context | None = None) -> bool:
    """True when `context` (default: the current one) holds a span to be a child of."""
    return trace.get_current_span(context).get_span_context().is_valid


def in_recorded_trace() -> bool:
    """True when the current span is recorded (sampled). A leaf span (SQL, Redis: nothing
    propagates from it) under an unrecorded one could never be recorded by the parent-based
    sampler, so it is not started at all."""
    return trace.get_current_span().is_recording()


class InTraceOnlyTracer(DelegatingTracer):
    """A tracer that makes spans only as children: with no current span (`leaf`: no recorded
    one) it hands out the invalid, non-recording span (nothing is created or exported)."""

    def __init__(self, tracer: Tracer, *, leaf: bool = False) -> None:
        self._tracer = tracer
        self._leaf = leaf

    def delegate(self, context: Context | None) -> Tracer | None:
        if self._leaf and context is None:
            return self._tracer if in_recorded_trace() else None
        return self._tracer if in_trace(context) else None


class LeafSpansProvider(TracerProvider):
    """Hands an instrumentation library of leaf spans (Redis) `InTraceOnlyTracer`s of
    `provider` that make spans only under a recorded span."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return InTraceOnlyTracer(self._provider.get_tracer(*args, **kwargs), leaf=True)
