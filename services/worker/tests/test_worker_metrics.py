"""The worker's series move when their events happen: jobs, batches, alerts, webhooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from arq import Retry
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from sqlalchemy import select
from worker_factories import along_route, job, window_aligned, with_resources

from tests.support.tracing import recording_spans
from tripline_common.data.models import WebhookDelivery
from tripline_worker.context import context
from tripline_worker.runner import instrumented

WAIT = 10.0


@pytest.fixture
def sample(metrics_registry: CollectorRegistry) -> Callable[..., float]:
    """`sample(name, **labels)`: a metric's value in the jobs' registry (0 if not set)."""

    def value(name: str, **labels: str) -> float:
        return metrics_registry.get_sample_value(name, labels) or 0.0

    return value


async def eventually(predicate, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_a_processed_batch_counts_its_events_alerts_and_latency(
    ctx, sample, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    await make_trip(owner, speed_limit_kmh=50)
    received = datetime.now(UTC) - timedelta(seconds=40)
    batch_id = await make_batch(
        owner, along_route(3, start=window_aligned(), speed_kmh=90), received_at=received
    )

    assert await job("process_batch")(ctx, str(batch_id)) == "processed"

    assert sample("tripline_worker_telemetry_events_processed_total") == 3
    assert sample("tripline_worker_alerts_raised_total", rule="speeding") == 1
    assert sample("tripline_worker_batch_latency_seconds_count") == 1
    # Measured from the batch's received_at, 40 s ago: it lands in the 60 s bucket, not below.
    assert sample("tripline_worker_batch_latency_seconds_bucket", le="30.0") == 0
    assert sample("tripline_worker_batch_latency_seconds_bucket", le="60.0") == 1
    assert sample("tripline_worker_jobs_started_total", function="process_batch") == 1
    finished = {"function": "process_batch", "outcome": "succeeded"}
    assert sample("tripline_worker_jobs_finished_total", **finished) == 1
    assert sample("tripline_worker_job_duration_seconds_count", function="process_batch") == 1

    # Run again, it changes nothing: no second latency, no second count of its events.
    assert await job("process_batch")(ctx, str(batch_id)) == "already_processed"
    assert sample("tripline_worker_batch_latency_seconds_count") == 1
    assert sample("tripline_worker_telemetry_events_processed_total") == 3


@pytest.fixture
def make_delivery(ctx, session_factory, make_owner, make_trip, make_batch, make_endpoint):
    """`await make_delivery(url)`: a speeding alert for an owner with one endpoint, processed;
    returns its pending delivery's id."""

    async def make(url: str) -> str:
        owner = await make_owner()
        await make_trip(owner, speed_limit_kmh=50)
        await make_endpoint(owner, url)
        batch_id = await make_batch(owner, along_route(2, start=window_aligned(), speed_kmh=90))
        await job("process_batch")(ctx, str(batch_id))
        async with session_factory() as session:
            return str(await session.scalar(select(WebhookDelivery.id)))

    return make


async def test_webhook_retries_and_give_ups_are_counted(
    ctx, sample, worker_settings, webhook_receiver, make_delivery
) -> None:
    ctx = with_resources(ctx, settings=worker_settings(webhook_max_attempts=2))
    deliver = job("deliver_webhook", context(ctx).settings)
    delivery_id = await make_delivery(webhook_receiver.url)

    webhook_receiver.script = [503, 500]
    with pytest.raises(Retry):
        await deliver(ctx, delivery_id)
    assert sample("tripline_worker_webhook_deliveries_total", outcome="retried") == 1
    retried = {"function": "deliver_webhook", "outcome": "retried"}
    assert sample("tripline_worker_jobs_finished_total", **retried) == 1

    assert await deliver(ctx, delivery_id) == "failed"
    assert sample("tripline_worker_webhook_deliveries_total", outcome="failed") == 1
    assert sample("tripline_worker_webhook_deliveries_total", outcome="delivered") == 0


async def test_a_delivered_webhook_is_counted(ctx, sample, webhook_receiver, make_delivery) -> None:
    delivery_id = await make_delivery(webhook_receiver.url)
    assert await job("deliver_webhook", context(ctx).settings)(ctx, delivery_id) == "delivered"
    assert sample("tripline_worker_webhook_deliveries_total", outcome="delivered") == 1


async def test_a_running_job_is_in_progress_and_a_crash_is_failed(ctx, metrics_registry) -> None:
    registry = metrics_registry
    seen: list[float | None] = []

    @instrumented
    async def crash(ctx) -> None:
        seen.append(
            registry.get_sample_value("tripline_worker_jobs_in_progress", {"function": "crash"})
        )
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await crash(ctx)
    assert seen == [1.0]
    assert registry.get_sample_value("tripline_worker_jobs_in_progress", {"function": "crash"}) == 0
    failed = {"function": "crash", "outcome": "failed"}
    assert registry.get_sample_value("tripline_worker_jobs_finished_total", failed) == 1


def duration_exemplars(registry: CollectorRegistry, function: str) -> list[dict[str, str]]:
    """The exemplar labels on `function`'s job duration buckets, in the OpenMetrics exposition."""
    name = "tripline_worker_job_duration_seconds"
    [family] = [f for f in openmetrics_families(openmetrics(registry).decode()) if f.name == name]
    buckets = [
        s for s in family.samples if s.labels.get("function") == function and "le" in s.labels
    ]
    assert buckets, f"no run of {function} observed"
    return [s.exemplar.labels for s in buckets if s.exemplar is not None]


async def test_a_sampled_job_run_leaves_its_trace_id_as_the_exemplar_of_its_duration(
    ctx, metrics_registry
) -> None:
    with recording_spans() as spans:
        assert await job("purge_sessions")(ctx) == 0
        [run] = spans.named("process purge_sessions")

    exemplars = duration_exemplars(metrics_registry, "purge_sessions")
    assert exemplars == [{"trace_id": format(run.context.trace_id, "032x")}]
    assert "trace_id" not in generate_latest(metrics_registry).decode()  # Classic: no exemplars.


async def test_with_tracing_off_a_job_run_leaves_no_exemplar(ctx, metrics_registry) -> None:
    assert await job("purge_sessions")(ctx) == 0
    assert duration_exemplars(metrics_registry, "purge_sessions") == []
