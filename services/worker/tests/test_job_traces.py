"""Jobs in a trace, through a real ARQ worker (burst mode, the test's Redis): a first run
continues the enqueuing request's trace; retries, sweeper re-enqueues and cron runs start
traces of their own, linked to their cause (cron: none)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from arq import Retry, cron
from arq.connections import ArqRedis
from arq.worker import Function, func
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from worker_factories import along_route, job, window_aligned

from tests.support.tracing import by_name
from tripline_common.messaging import correlated_job
from tripline_common.platform.correlation import bind_request_id
from tripline_worker.context import ArqContext, context
from tripline_worker.runner import arq_worker

tracer = trace.get_tracer("test")
Calls = list[tuple[int, tuple[Any, ...], dict[str, Any]]]


def recording(
    name: str, calls: Calls, *, retry_first_run: bool = False, ran_in: list[int] | None = None
) -> Function:
    """A job called `name` that records each run (try, args, kwargs) and the span it ran in,
    registered as ours are (through `correlated_job`); it asks for a retry on its first run if
    told to."""

    async def run(ctx: ArqContext, *args: Any, **kwargs: Any) -> None:
        calls.append((ctx["job_try"], args, kwargs))
        if ran_in is not None:
            ran_in.append(trace.get_current_span().get_span_context().span_id)
        if retry_first_run and ctx["job_try"] == 1:
            raise Retry()

    run.__name__ = name
    return func(correlated_job(run), name=name)


async def run_worker(ctx: ArqContext, *functions: Function, **options: Any) -> None:
    """Run the worker as the service builds it until its queue is empty."""
    worker = arq_worker(
        context(ctx),
        **({"functions": list(functions)} if functions else {}),
        **{"cron_jobs": [], "burst": True, "poll_delay": 0.01, **options},
    )
    await worker.async_run()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_jobs_first_run_is_a_child_of_its_enqueue_in_the_requests_trace(ctx, spans) -> None:
    queue = context(ctx).job_queue
    calls: Calls = []
    ran_in: list[int] = []
    bind_request_id("rid-traced")
    try:
        with tracer.start_as_current_span("request") as request:
            await queue.enqueue("echo", "a", job_id="echo:1", extra=1)
    finally:
        bind_request_id(None)

    await run_worker(ctx, recording("echo", calls, ran_in=ran_in))

    finished = spans.finished()
    [send] = by_name(finished, f"send {queue.queue_name}")
    [run] = by_name(finished, "process echo")
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert run.kind is SpanKind.CONSUMER
    assert run.parent is not None and run.parent.span_id == send.context.span_id
    assert run.context.trace_id == request.get_span_context().trace_id
    assert not run.links
    assert attributes(run) == {
        "messaging.system": "arq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": queue.queue_name,
        "messaging.message.id": "echo:1",
        "messaging.arq.job.function": "echo",
        "messaging.arq.job.try": 1,
        "messaging.arq.job.outcome": "succeeded",
        "tripline.request_id": "rid-traced",
    }
    # The job function received exactly what the caller passed (no tracing keys), and ran
    # inside the consumer span.
    assert calls == [(1, ("a",), {"extra": 1})]
    assert ran_in == [run.context.span_id]


async def test_a_retried_job_runs_again_in_a_new_trace_linked_to_the_first(ctx, spans) -> None:
    queue = context(ctx).job_queue
    calls: Calls = []
    with tracer.start_as_current_span("request"):
        await queue.enqueue("flaky", job_id="flaky:1")

    await run_worker(ctx, recording("flaky", calls, retry_first_run=True))

    finished = spans.finished()
    [send] = by_name(finished, f"send {queue.queue_name}")
    first, second = by_name(finished, "process flaky")
    assert [c[0] for c in calls] == [1, 2]
    assert first.parent is not None and first.parent.span_id == send.context.span_id
    assert attributes(first)["messaging.arq.job.outcome"] == "retried"
    assert second.parent is None
    assert second.context.trace_id != first.context.trace_id
    [link] = second.links
    assert (link.context.trace_id, link.context.span_id) == (
        first.context.trace_id,
        send.context.span_id,
    )
    assert attributes(second)["messaging.arq.job.try"] == 2
    assert attributes(second)["messaging.arq.job.outcome"] == "succeeded"


async def test_a_batch_the_sweeper_enqueues_again_runs_in_its_own_trace_linked_to_the_sweep(
    ctx, make_owner, make_trip, make_batch, spans
) -> None:
    owner = await make_owner()
    await make_trip(owner)
    fixes = along_route(2, start=window_aligned())
    lost_since = datetime.now(UTC) - timedelta(minutes=10)
    await make_batch(owner, fixes, received_at=lost_since, request_id="rid-lost")

    assert await job("requeue_stuck_batches")(ctx) == 1  # A cron run, as the worker's.
    await run_worker(ctx)  # The registry's own jobs.

    finished = spans.finished()
    [sweep] = by_name(finished, "process requeue_stuck_batches")
    [send] = by_name(finished, f"send {context(ctx).job_queue.queue_name}")
    [run] = by_name(finished, "process process_batch")
    assert sweep.parent is None  # A cron run: a trace of its own.
    assert send.parent is not None and send.parent.span_id == sweep.context.span_id
    assert run.parent is None and run.context.trace_id != sweep.context.trace_id
    [link] = run.links
    assert (link.context.trace_id, link.context.span_id) == (
        sweep.context.trace_id,
        send.context.span_id,
    )
    assert attributes(run)["tripline.request_id"] == "rid-lost"  # The work's own story.
    assert attributes(run)["messaging.arq.job.outcome"] == "succeeded"


async def test_a_job_of_the_previous_release_without_an_envelope_runs_as_a_root_span(
    ctx, make_settings, spans
) -> None:
    queue = context(ctx).job_queue
    calls: Calls = []
    # The previous release's producer: ARQ's default serializer, the correlation ID in kwargs.
    old = ArqRedis.from_url(make_settings().redis_url)
    try:
        with tracer.start_as_current_span("request"):
            await old.enqueue_job(
                "echo", 2, _job_id="echo:old", _queue_name=queue.queue_name, request_id="rid-old"
            )
    finally:
        await old.aclose()

    await run_worker(ctx, recording("echo", calls))

    [run] = by_name(spans.finished(), "process echo")
    assert run.parent is None and not run.links
    assert "messaging.destination.name" not in attributes(run)
    assert attributes(run)["tripline.request_id"] == "rid-old"
    assert calls == [(1, (2,), {})]


async def test_a_cron_run_is_a_root_span_even_when_the_worker_started_inside_a_trace(
    ctx, spans
) -> None:
    calls: Calls = []

    async def tick(ctx: ArqContext) -> None:
        calls.append((ctx["job_try"], (), {}))

    next_month = datetime.now(UTC).month % 12 + 1  # Runs at startup only, during the test.
    tick_cron = cron(correlated_job(tick), name="tick", run_at_startup=True, month={next_month})
    with tracer.start_as_current_span("startup"):
        await run_worker(ctx, cron_jobs=[tick_cron], functions=[])

    [run] = by_name(spans.finished(), "process tick")
    assert calls == [(1, (), {})]
    assert run.parent is None and not run.links
