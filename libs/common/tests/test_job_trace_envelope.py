"""A job's trace context travels in an envelope key of its own, beside ARQ's, never in its
arguments; jobs of the previous release (no envelope) and workers of it still work."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import deserialize_job_raw
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tests.support.tracing import by_name
from tripline_common.messaging import JobQueue, correlated_job, create_redis, load_job
from tripline_common.messaging.job_tracing import ENVELOPE_KEY
from tripline_common.platform.correlation import bind_request_id

QUEUE = "arq:trace-test"


@pytest.fixture
async def redis(make_settings) -> AsyncIterator[ArqRedis]:
    client = create_redis(make_settings())
    yield client
    await client.aclose()


async def raw_job(redis: ArqRedis, job_id: str) -> bytes:
    raw = await redis.get(job_key_prefix + job_id)
    assert raw is not None
    return bytes(raw)


async def test_an_enqueue_is_a_producer_span_whose_context_the_job_carries_outside_its_arguments(
    redis, spans
) -> None:
    queue = JobQueue(redis, QUEUE)
    bind_request_id("rid-envelope")
    try:
        with trace.get_tracer("test").start_as_current_span("request") as request:
            assert await queue.enqueue("echo", "a", job_id="echo:1", extra=1)
    finally:
        bind_request_id(None)

    [send] = by_name(spans.finished(), f"send {QUEUE}")
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    assert dict(send.attributes or {}) == {
        "messaging.system": "arq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": QUEUE,
        "messaging.message.id": "echo:1",
        "messaging.arq.job.function": "echo",
        "messaging.arq.job.enqueued": True,
    }
    data = pickle.loads(await raw_job(redis, "echo:1"))
    trace_id, span_id = f"{send.context.trace_id:032x}", f"{send.context.span_id:016x}"
    _, carried_trace, carried_span, _ = data[ENVELOPE_KEY]["context"]["traceparent"].split("-")
    assert (carried_trace, carried_span) == (trace_id, span_id)
    assert data[ENVELOPE_KEY]["queue"] == QUEUE
    assert data[ENVELOPE_KEY]["follows"] is False
    # The function's arguments are the caller's (and the correlation ID, as before).
    assert data["a"] == ("a",)
    assert data["k"] == {"extra": 1, "request_id": "rid-envelope"}


async def test_a_worker_of_the_previous_release_reads_a_job_with_an_envelope(redis, spans) -> None:
    with trace.get_tracer("test").start_as_current_span("request"):
        await JobQueue(redis, QUEUE).enqueue("echo", 7, job_id="echo:old-worker", request_id="r")

    # ARQ's own deserialisation (plain pickle), as a worker without our deserializer reads it.
    function, args, kwargs, _, _ = deserialize_job_raw(await raw_job(redis, "echo:old-worker"))

    assert (function, args, kwargs) == ("echo", (7,), {"request_id": "r"})


async def test_a_job_enqueued_without_an_envelope_is_read_and_run_as_a_root_span(
    make_settings, spans
) -> None:
    # The previous release's producer: ARQ's default (pickle) serializer, no envelope.
    settings = make_settings()
    old = ArqRedis.from_url(settings.redis_url)
    try:
        await old.enqueue_job("echo", 1, _job_id="echo:old", _queue_name=QUEUE, request_id="r1")
        raw = await raw_job(old, "echo:old")
    finally:
        await old.aclose()
    seen: dict[str, Any] = {}

    @correlated_job
    async def echo(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        seen.update(args=args, kwargs=kwargs)

    data = load_job(raw)
    with trace.get_tracer("test").start_as_current_span("unrelated"):
        await echo({"job_id": "echo:old", "job_try": 1}, *data["a"], **data["k"])

    assert ENVELOPE_KEY not in data
    assert seen == {"args": (1,), "kwargs": {}}
    [run] = by_name(spans.finished(), "process echo")
    assert run.parent is None and not run.links
    assert run.kind is SpanKind.CONSUMER
    assert (run.attributes or {})["tripline.request_id"] == "r1"
    assert (run.attributes or {})["messaging.arq.job.outcome"] == "succeeded"


async def test_a_failed_run_has_error_status_and_a_retry_request_does_not(spans) -> None:
    @correlated_job
    async def broken(ctx: dict[str, Any]) -> None:
        raise LookupError("the job's own failure")

    @correlated_job
    async def later(ctx: dict[str, Any]) -> None:
        raise Retry(defer=1)

    with pytest.raises(LookupError):
        await broken({"job_id": "broken:1"})
    with pytest.raises(Retry):
        await later({"job_id": "later:1"})

    [failed] = by_name(spans.finished(), "process broken")
    [retried] = by_name(spans.finished(), "process later")
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "LookupError"
    assert (failed.attributes or {})["messaging.arq.job.outcome"] == "failed"
    assert [event.name for event in failed.events] == ["exception"]
    assert retried.status.status_code is trace.StatusCode.UNSET
    assert (retried.attributes or {})["messaging.arq.job.outcome"] == "retried"
