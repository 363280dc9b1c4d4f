"""Client spans for Redis commands: `opentelemetry-instrumentation-redis`, in a trace only.

The instrumentation wraps redis-py's (and `redis.asyncio`'s) `execute_command` and pipeline
`execute`: one span per command, one per pipeline (named by its commands), the statement
sanitised to the command and `?` per argument. Its tracer makes spans only under a recorded
span (`LeafSpansProvider`), so the commands run outside a request or a job (the worker's queue
polling) make no span.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.trace import Span, TracerProvider

from tripline_common.platform.client_spans import LeafSpansProvider


def _name_the_operation(span: Span, instance: Any, args: Any, kwargs: Any) -> None:
    # The instrumentation names the span by the command but sets no `db.operation.name`.
    if span.is_recording() and args:
        span.set_attribute("db.operation.name", str(args[0]))
        span.set_attribute("db.system.name", "redis")


def instrument_redis(tracer_provider: TracerProvider) -> None:
    """Make a span of every Redis command and pipeline run inside a trace, with
    `tracer_provider` (called again, with the new one)."""
    instrumentor = RedisInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(
        tracer_provider=LeafSpansProvider(tracer_provider),
        request_hook=_name_the_operation,
    )


def uninstrument_redis() -> None:
    """Unwrap redis-py again."""
    instrumentor = RedisInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
