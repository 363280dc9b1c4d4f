"""Worker metrics: jobs (started, finished by outcome, duration, running), pipeline counts, and
the queue's depth and oldest due job, refreshed from Redis by a background task."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import structlog
from arq.connections import ArqRedis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError

from tripline_common.data.models import AlertRule
from tripline_common.messaging import queue_stats

log = structlog.get_logger("tripline.worker.metrics")

T = TypeVar("T")

# Seconds between two reads of the queue's state from Redis.
QUEUE_REFRESH_SECONDS = 5.0


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
        self.batch_latency = Histogram(
            "tripline_worker_batch_latency_seconds",
            "From a batch accepted at ingest (its received_at) to its processing committed.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "tripline_worker_webhook_deliveries",
            "Webhook delivery attempts, by outcome: delivered, retried or failed (given up).",
            ["outcome"],
            registry=registry,
        )
        # Every label value exported from the start (at 0), so rates and alerts see it at once.
        for rule in AlertRule:
            self.alerts_raised.labels(rule.value)
        for outcome in ("delivered", "retried", "failed"):
            self.webhook_deliveries.labels(outcome)
        self.queue_depth = Gauge(
            "tripline_worker_queue_depth",
            "Jobs waiting in the queue, due or deferred (refreshed every few seconds).",
            ["queue"],
            registry=registry,
        )
        self.queue_oldest_job_age = Gauge(
            "tripline_worker_queue_oldest_job_age_seconds",
            "How long the oldest due job has waited for a worker; 0 when none is due.",
            ["queue"],
            registry=registry,
        )


class QueueMonitor:
    """Keeps the queue gauges current: reads the queue from Redis every `interval` seconds.

    A background task rather than a read per scrape: Prometheus (and every replica's scrape)
    then never waits on Redis, and the cost is fixed whatever the scrape rate.
    """

    def __init__(
        self,
        metrics: JobMetrics,
        redis: ArqRedis,
        queue_name: str,
        interval: float = QUEUE_REFRESH_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.redis = redis
        self.queue_name = queue_name
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._stopping = False

    async def refresh(self) -> None:
        """Read the queue once and set the gauges."""
        stats = await queue_stats(self.redis, self.queue_name, scan_limit=1000)
        self.metrics.queue_depth.labels(self.queue_name).set(stats["queued"])
        self.metrics.queue_oldest_job_age.labels(self.queue_name).set(
            stats["oldest_due_age_seconds"]
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="queue-monitor")

    async def stop(self) -> None:
        """End the refresh task. A cancel can be absorbed by a Redis call in flight (as ARQ's
        loop showed, `runner.py: _main_loop_ended`; a CI run hung here on the worker's
        shutdown), so the loop also checks a flag and the cancel is repeated until it ends."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.refresh()
                self._failing = False
            except (RedisError, OSError) as exc:
                # Redis is down: /readyz says so; the gauges keep their last values.
                if not self._failing:
                    log.warning("queue_metrics_unavailable", error=str(exc))
                self._failing = True
            await asyncio.sleep(self.interval)
