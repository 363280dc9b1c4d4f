"""Worker metrics: jobs (started, finished by outcome, duration, running) and pipeline counts."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq import Retry
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

T = TypeVar("T")


class JobMetrics:
    """Prometheus series for jobs, registered on the worker app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "tripline_worker_jobs_started", "Jobs started.", ["function"], registry=registry
        )
        self.finished = Counter(
            "tripline_worker_jobs_finished",
            "Jobs finished, by outcome: succeeded, failed or retried.",
            ["function", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "tripline_worker_job_duration_seconds",
            "Job run time.",
            ["function"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.in_progress = Gauge(
            "tripline_worker_jobs_in_progress", "Jobs running now.", ["function"], registry=registry
        )
        self.events_processed = Counter(
            "tripline_worker_telemetry_events_processed",
            "Telemetry events in batches processed.",
            registry=registry,
        )
        self.alerts_raised = Counter(
            "tripline_worker_alerts_raised", "New alerts, by rule.", ["rule"], registry=registry
        )
        self.webhook_attempts = Counter(
            "tripline_worker_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered, retried or failed (given up).",
            ["outcome"],
            registry=registry,
        )


def instrumented(func: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Record a job's metrics through the `JobMetrics` the worker puts in ARQ's `ctx`."""
    name = func.__name__

    @functools.wraps(func)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        metrics: JobMetrics = ctx["metrics"]
        metrics.started.labels(name).inc()
        started = time.perf_counter()
        outcome = "failed"
        try:
            with metrics.in_progress.labels(name).track_inprogress():
                result = await func(ctx, *args, **kwargs)
            outcome = "succeeded"
            return result
        except Retry:
            outcome = "retried"
            raise
        finally:
            metrics.finished.labels(name, outcome).inc()
            metrics.duration.labels(name).observe(time.perf_counter() - started)

    return wrapper
