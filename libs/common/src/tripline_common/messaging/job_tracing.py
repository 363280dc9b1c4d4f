"""Jobs in a trace: a producer span at enqueue, the trace context in the job's own envelope key,
a consumer span per run (OpenTelemetry messaging conventions; the API only, no SDK needed).

The context never travels in the job function's arguments: `dump_job` (ARQ's `job_serializer`)
adds a key of ours, `ENVELOPE_KEY`, beside ARQ's own (`f`, `a`, `k`, `t`, `et`), and `load_job`
(its `job_deserializer`) takes it out again. ARQ ignores keys it does not know, so a worker of
the previous release runs these jobs, and a job without the key (enqueued by the previous
release, or by ARQ's cron) runs as a trace of its own.

The worker calls `load_job` in the task that runs the job (`Worker.run_job`), just before it
creates the job's own task, which copies that task's context variables: that is how the
envelope reaches `consumer_span` without going through ARQ's `ctx` or the arguments.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from arq import Retry
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

ENVELOPE_KEY = "tripline.trace"
"""The serialized job's key for its trace context: `{"context": <W3C carrier>, "queue": <name>,
"follows": <bool>}`; `follows` marks a re-enqueue (a sweeper's), which links to its cause."""

MESSAGING_SYSTEM = "arq"
"""The conventions register no value for ARQ; this is ours."""

# Attribute names: the conventions' where they have one, ARQ's own namespace otherwise.
JOB_FUNCTION = "messaging.arq.job.function"
JOB_TRY = "messaging.arq.job.try"
JOB_OUTCOME = "messaging.arq.job.outcome"
JOB_ENQUEUED = "messaging.arq.job.enqueued"
"""On a `send` span: False when a job with that ID was there already (queued, running or its
result kept), so nothing was sent."""
REQUEST_ID = "tripline.request_id"

# Resolved at each span: a ProxyTracer follows whichever provider is (later) set globally.
_tracer = trace.get_tracer("tripline.messaging.jobs")

_outgoing: ContextVar[dict[str, Any] | None] = ContextVar("tripline_job_trace_out", default=None)
_incoming: ContextVar[dict[str, Any] | None] = ContextVar("tripline_job_trace_in", default=None)


def dump_job(data: Any) -> bytes:
    """ARQ's job serializer: pickle, as ARQ's default, plus the envelope of a job being sent.

    Results go through here too; only a `producer_span` arms the envelope, so they carry none.
    """
    envelope = _outgoing.get()
    if envelope is not None and isinstance(data, dict):
        data = {**data, ENVELOPE_KEY: envelope}
    return pickle.dumps(data)


def load_job(raw: bytes) -> Any:
    """ARQ's job deserializer: unpickle; keep the envelope (or its absence) for the run."""
    data = pickle.loads(raw)  # noqa: S301 - our own Redis, the format ARQ uses by default.
    envelope = data.pop(ENVELOPE_KEY, None) if isinstance(data, dict) else None
    _incoming.set(envelope)
    return data


@contextmanager
def producer_span(
    function: str, queue: str, job_id: str, *, follows: bool = False
) -> Iterator[Span]:
    """The span of one enqueue (`send <queue>`), a child of the current one; the job enqueued
    inside it carries its context. `follows`: the job's run starts a trace of its own, linked
    to this one (a re-enqueue by a sweeper is not part of the sweeper's work)."""
    attributes = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
        JOB_FUNCTION: function,
    }
    with _tracer.start_as_current_span(
        f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        # No valid context (no SDK, or not sampled into existence): nothing to carry.
        envelope = {"context": carrier, "queue": queue, "follows": follows} if carrier else None
        token = _outgoing.set(envelope)
        try:
            yield span
        finally:
            _outgoing.reset(token)


@contextmanager
def consumer_span(function: str, ctx: Mapping[str, Any], request_id: str) -> Iterator[Span]:
    """The span of one run of a job (`process <function>`), its outcome and error status.

    The first run is a child of the producer span that enqueued the job (so of the request);
    a retry (`job_try` > 1) or a re-enqueued job starts a trace of its own with a link to it;
    a job without an envelope (a cron run, a job of the previous release) is a root span.
    """
    envelope = _incoming.get()
    job_try = int(ctx.get("job_try") or 1)
    parent = otel_context.Context()  # Explicitly empty: a root span unless the first run.
    links: list[Link] = []
    attributes: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        JOB_FUNCTION: function,
        JOB_TRY: job_try,
        REQUEST_ID: request_id,
    }
    if ctx.get("job_id"):
        attributes["messaging.message.id"] = str(ctx["job_id"])
    if envelope:
        attributes["messaging.destination.name"] = envelope.get("queue", "")
        sent = propagate.extract(envelope.get("context") or {})
        sent_span = trace.get_current_span(sent).get_span_context()
        if sent_span.is_valid:
            if job_try > 1 or envelope.get("follows"):
                links.append(Link(sent_span))
            else:
                parent = sent
    with _tracer.start_as_current_span(
        f"process {function}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Retry:
            span.set_attribute(JOB_OUTCOME, "retried")  # Not an error: the job asked for it.
            raise
        except BaseException as exc:  # A cancelled run (timeout, shutdown) failed too.
            span.set_attribute(JOB_OUTCOME, "failed")
            span.set_attribute("error.type", type(exc).__qualname__)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
            raise
        else:
            span.set_attribute(JOB_OUTCOME, "succeeded")
