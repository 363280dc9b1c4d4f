"""The queue's gauges, exported by the admin app: ready, deferred, in progress, retrying, and the
oldest ready job's age, refreshed from Redis by a background task.

The admin app exports them, not the worker, because it runs whatever the worker's replica count:
an autoscaler that scales the worker to zero must still see the backlog to bring it back.
Every admin replica reads the same Redis, so each exports the same values: aggregate them with
`max`, never `sum` (docs/deploying.md, "Autoscaling the worker").
"""

from __future__ import annotations

import asyncio
import time

import structlog
from arq.connections import ArqRedis
from prometheus_client import CollectorRegistry, Gauge
from redis.exceptions import RedisError

from tripline_admin.queues.history import record_depth, slot_of
from tripline_common.messaging import QueueState, read_queue_state

log = structlog.get_logger("tripline.admin.queue_metrics")

STATES = ("ready", "deferred", "in_progress")
"""The `state` label of `tripline_admin_queue_jobs`: they partition the queue's jobs."""


class QueueMetrics:
    """The queue gauges, on the admin app's registry; every series exported from the start."""

    def __init__(self, registry: CollectorRegistry, queue_name: str) -> None:
        self.jobs = Gauge(
            "tripline_admin_queue_jobs",
            "Jobs in the ARQ queue by state: ready (due, not running), deferred (due later) or "
            "in_progress (running); they sum to the queue's size.",
            ["queue", "state"],
            registry=registry,
        )
        self.retrying = Gauge(
            "tripline_admin_queue_jobs_retrying",
            "Jobs waiting (ready or deferred) for another try: ARQ's retry counter is set.",
            ["queue"],
            registry=registry,
        )
        self.oldest_ready_age = Gauge(
            "tripline_admin_queue_oldest_ready_age_seconds",
            "How long the oldest ready job has been due without a worker taking it; 0 when "
            "none is ready.",
            ["queue"],
            registry=registry,
        )
        for state in STATES:
            self.jobs.labels(queue_name, state)
        self.retrying.labels(queue_name)
        self.oldest_ready_age.labels(queue_name)

    def show(self, state: QueueState) -> None:
        """Set the gauges to one read of the queue."""
        for name in STATES:
            self.jobs.labels(state.queue, name).set(getattr(state, name))
        self.retrying.labels(state.queue).set(state.retrying)
        self.oldest_ready_age.labels(state.queue).set(state.oldest_ready_age_seconds)


class QueueMonitor:
    """Keeps the queue gauges current: reads the queue from Redis every `interval` seconds, and
    keeps a sample of its depth per slot for the console's chart (`queues.history`).

    A background task rather than a read per scrape: a scrape never waits on Redis, and the
    cost is fixed whatever the number of scrapers and replicas.
    """

    def __init__(
        self, metrics: QueueMetrics, redis: ArqRedis, queue_name: str, interval: float
    ) -> None:
        self.metrics = metrics
        self.redis = redis
        self.queue_name = queue_name
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._sampled_slot: int | None = None
        self._failing = False
        self._stopping = False

    async def refresh(self) -> None:
        """Read the queue once and set the gauges; the first read of each slot is also kept
        as the depth history's sample (`queues.history`), the console's chart."""
        state = await read_queue_state(self.redis, self.queue_name)
        self.metrics.show(state)
        now = time.time()
        if slot_of(now) != self._sampled_slot:
            depth = state.ready + state.deferred
            await record_depth(self.redis, self.queue_name, depth=depth, at=now)
            self._sampled_slot = slot_of(now)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="queue-monitor")

    async def stop(self) -> None:
        """End the refresh task. A cancel can be absorbed by a Redis call in flight (as ARQ's
        loop showed, `runner.py: _main_loop_ended`; a CI run hung on a worker's shutdown), so
        the loop also checks a flag and the cancel is repeated until it ends."""
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
