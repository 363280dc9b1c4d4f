"""The typed job context: what every job reads from ARQ's `ctx` dict, through typed accessors.

ARQ hands each job a plain dict: the worker's own entries (set once, at start) merged with
ARQ's per-run ones (`job_id`, `job_try`, ...). The worker puts one `WorkerContext` in it; jobs
read `context(ctx).settings`, `job_try(ctx)` and so on, never a string key. (ARQ's `job_id` is
read once, by `tripline_common.messaging.queue.correlated_job`, which binds it to every log line.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from arq.connections import ArqRedis

from tripline_common.data import SessionFactory
from tripline_common.messaging import JobQueue
from tripline_worker.metrics import JobMetrics
from tripline_worker.settings import WorkerServiceSettings

ArqContext = dict[str, Any]
"""The dict ARQ passes every job as its first argument."""

_WORKER_KEY = "worker"


@dataclass(frozen=True)
class WorkerContext:
    """The worker's resources, shared by every job it runs."""

    settings: WorkerServiceSettings
    session_factory: SessionFactory
    job_queue: JobQueue
    """Enqueues jobs (after commit inside a unit of work)."""
    redis: ArqRedis
    """The process's Redis client: alerts are published through it."""
    metrics: JobMetrics
    webhook_client: httpx.AsyncClient
    """The one HTTP client for every webhook delivery (pooled, SSRF-guarded)."""

    def arq_context(self) -> ArqContext:
        """The `ctx` to give ARQ's `Worker` (ARQ adds its per-run entries to a copy)."""
        return {_WORKER_KEY: self}


def context(ctx: ArqContext) -> WorkerContext:
    """The worker's resources, from the `ctx` ARQ passed a job."""
    worker = ctx[_WORKER_KEY]
    assert isinstance(worker, WorkerContext), "ctx was not built by WorkerContext.arq_context"
    return worker


def job_try(ctx: ArqContext) -> int:
    """Which run of the job this is: 1 for the first, 2 for the first retry..."""
    return int(ctx.get("job_try") or 1)
