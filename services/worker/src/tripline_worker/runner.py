"""Runs the ARQ worker inside the worker app's event loop: supervised, drained on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import structlog
from arq import cron
from arq.worker import Worker, func

from tripline_common.app import Resources
from tripline_common.queue import traced_job
from tripline_worker.jobs.batches import process_batch, requeue_stuck_batches
from tripline_worker.metrics import JobMetrics, instrumented
from tripline_worker.settings import WorkerServiceSettings

log = structlog.get_logger("tripline.worker")


class WorkerSettings:
    """ARQ's view of the worker: its functions and cron jobs (tuning comes from settings).

    `arq tripline_worker.runner.WorkerSettings --check` uses the same health key as the worker.
    """

    functions = [func(traced_job(instrumented(process_batch)), name="process_batch")]
    cron_jobs = [
        cron(
            traced_job(instrumented(requeue_stuck_batches)),
            name="requeue_stuck_batches",
            second={0, 30},
            run_at_startup=True,
            unique=True,
            timeout=60,
        )
    ]


class ArqRunner:
    """Owns the ARQ `Worker`: restarts it after a Redis outage, drains it on shutdown.

    Signals are handled by the HTTP server (readiness fails first); this runner is then asked
    to stop: it takes no new jobs, lets running ones finish for `job_completion_wait` seconds,
    and cancels the rest (ARQ runs a cancelled job again later: jobs are idempotent).
    """

    def __init__(self, resources: Resources, metrics: JobMetrics) -> None:
        self.resources = resources
        self.metrics = metrics
        self.settings: WorkerServiceSettings = resources.settings  # type: ignore[assignment]
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _build(self) -> Worker:
        s = self.settings
        ctx: dict[str, Any] = {
            "settings": s,
            "session_factory": self.resources.session_factory,
            "queue": self.resources.queue,
            "metrics": self.metrics,
        }
        return Worker(
            functions=WorkerSettings.functions,
            cron_jobs=WorkerSettings.cron_jobs,
            queue_name=s.arq_queue_name,
            redis_pool=self.resources.redis,
            handle_signals=False,
            max_jobs=s.max_jobs,
            poll_delay=s.poll_delay,
            job_timeout=s.job_timeout,
            max_tries=s.max_tries,
            keep_result=s.keep_result,
            health_check_interval=s.health_check_interval,
            ctx=ctx,
        )

    @property
    def running(self) -> bool:
        """True while the ARQ main loop runs."""
        return (
            self.worker is not None
            and self.worker.main_task is not None
            and not self.worker.main_task.done()
        )

    async def check(self) -> None:
        """Readiness check: raises unless the ARQ loop is running."""
        if not self.running:
            raise RuntimeError("the ARQ worker loop is not running")

    def start(self) -> None:
        """Start the supervised ARQ loop in the background."""
        self._task = asyncio.create_task(self._supervise(), name="arq-supervisor")

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping:
            self.worker = self._build()
            try:
                await self.worker.async_run()
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception as exc:  # Redis went away: back off, rebuild, go on.
                log.warning("arq_loop_failed", error=str(exc), retry_in=delay)
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        """Stop taking jobs, let running jobs finish (bounded), then cancel what remains."""
        self._stopping = True
        worker = self.worker
        if worker is not None:
            worker.allow_pick_jobs = False
            running = len(worker.tasks)
            log.info(
                "worker_draining", running_jobs=running, wait=self.settings.job_completion_wait
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._jobs_done(worker), self.settings.job_completion_wait)
            worker.handle_sig(signal.SIGTERM)  # Cancels leftovers and the main loop.
            await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
            with contextlib.suppress(Exception):
                await worker.pool.delete(worker.health_check_key)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        log.info("worker_stopped")

    @staticmethod
    async def _jobs_done(worker: Worker) -> None:
        running = [task for task in worker.tasks.values() if not task.done()]
        if running:
            await asyncio.wait(running)
