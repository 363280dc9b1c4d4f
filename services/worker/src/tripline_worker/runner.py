"""Runs the ARQ worker inside the worker app's event loop: supervised, drained on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from arq import cron
from arq.cron import CronJob
from arq.worker import Function, Worker, func

from tripline_common.data import SEND_ACCOUNT_MAIL
from tripline_common.messaging import DELIVER_WEBHOOK, PROCESS_BATCH, traced_job
from tripline_common.platform import report_job_failures
from tripline_common.web import Resources
from tripline_worker.jobs.account_mail import send_account_mail
from tripline_worker.jobs.batches import process_batch, requeue_stuck_batches
from tripline_worker.jobs.maintenance import purge_sessions, purge_telemetry, requeue_stuck_jobs
from tripline_worker.jobs.trips import check_lost_signal
from tripline_worker.jobs.waypoint_import import import_waypoints
from tripline_worker.jobs.webhooks import deliver_webhook, requeue_stuck_deliveries
from tripline_worker.metrics import JobMetrics, QueueMonitor, instrumented
from tripline_worker.outages import retry_when_unavailable
from tripline_worker.probe import health_check_key
from tripline_worker.settings import WorkerServiceSettings
from tripline_worker.webhooks.delivery import webhook_client

log = structlog.get_logger("tripline.worker")

# ARQ runs of a delivery beyond its own attempt bound: room for runs cut short by a worker
# that died, so that the delivery, not ARQ, decides when to give up (and records it).
DELIVERY_SPARE_TRIES = 3


def _job(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """How every job runs: correlation ID and log lines, one Sentry event when it fails,
    metrics, outages turned into retries."""
    return traced_job(report_job_failures(instrumented(retry_when_unavailable(function))))


def worker_functions(settings: WorkerServiceSettings) -> list[Function]:
    """The jobs this worker runs, by their shared names.

    Their results are not kept (`keep_result=0`): the row in Postgres is the result. A kept
    result would also block the sweepers' re-enqueue of a job that failed (a timeout, say)
    for `keep_result` seconds.
    """
    return [
        func(_job(process_batch), name=PROCESS_BATCH, keep_result=0),
        func(
            _job(deliver_webhook),
            name=DELIVER_WEBHOOK,
            keep_result=0,
            max_tries=settings.webhook_max_attempts + DELIVERY_SPARE_TRIES,
        ),
        func(_job(import_waypoints), name="import_waypoints", keep_result=0),
        func(_job(send_account_mail), name=SEND_ACCOUNT_MAIL, keep_result=0),
    ]


def every(seconds: int, *, offset: int = 0) -> dict[str, Any]:
    """ARQ cron fields for "every `seconds` seconds" (a divisor of 60, or whole minutes
    dividing an hour), starting `offset` seconds into the minute."""
    if seconds < 60 and 60 % seconds == 0:
        return {"second": {(offset + s) % 60 for s in range(0, 60, seconds)}}
    if seconds % 60 == 0 and 3600 % seconds == 0:
        return {"minute": set(range(0, 60, seconds // 60)), "second": {offset % 60}}
    raise ValueError(f"{seconds}s is not a divisor of a minute or of an hour")


def cron_jobs(settings: WorkerServiceSettings) -> list[CronJob]:
    """The periodic jobs. ARQ's `unique` cron job IDs make each run happen on one worker only,
    however many replicas there are. Their timeout is the job timeout (see `job_timeout`)."""
    sweep = settings.sweep_interval_seconds
    return [
        cron(
            _job(requeue_stuck_batches),
            name="requeue_stuck_batches",
            run_at_startup=True,
            **every(sweep),
        ),
        cron(
            _job(requeue_stuck_deliveries),
            name="requeue_stuck_deliveries",
            **every(sweep, offset=1),
        ),
        cron(_job(requeue_stuck_jobs), name="requeue_stuck_jobs", **every(sweep, offset=2)),
        cron(
            _job(check_lost_signal),
            name="check_lost_signal",
            **every(settings.lost_signal_check_seconds, offset=3),
        ),
        cron(_job(purge_telemetry), name="purge_telemetry", minute={7}, second={10}),
        cron(_job(purge_sessions), name="purge_sessions", minute={37}, second={10}),
    ]


class ArqRunner:
    """Owns the ARQ `Worker`: restarts it after a Redis outage, drains it on shutdown; and the
    task that refreshes the queue's gauges.

    Signals are handled by the HTTP server (readiness fails first); this runner is then asked
    to stop: it takes no new jobs, lets running ones finish for `job_completion_wait` seconds,
    and cancels the rest (ARQ runs a cancelled job again later: jobs are idempotent).
    """

    def __init__(
        self, resources: Resources, settings: WorkerServiceSettings, metrics: JobMetrics
    ) -> None:
        self.resources = resources
        self.metrics = metrics
        self.settings = settings
        self.worker: Worker | None = None
        self.http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.queue_monitor = QueueMonitor(metrics, resources.redis, self.settings.arq_queue_name)

    def _build(self) -> Worker:
        s = self.settings
        ctx: dict[str, Any] = {
            "settings": s,
            "session_factory": self.resources.session_factory,
            "queue": self.resources.queue,
            "metrics": self.metrics,
            "http": self.http,
        }
        return Worker(
            functions=worker_functions(s),
            cron_jobs=cron_jobs(s),
            queue_name=s.arq_queue_name,
            redis_pool=self.resources.redis,
            handle_signals=False,
            max_jobs=s.max_jobs,
            poll_delay=s.poll_delay,
            job_timeout=s.job_timeout,
            max_tries=s.max_tries,
            keep_result=s.keep_result,
            health_check_interval=s.health_check_interval,
            health_check_key=health_check_key(s),
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
        s = self.settings
        # One client for every delivery: pooled, short timeouts, no redirects, SSRF-guarded.
        self.http = webhook_client(
            s,
            timeout=httpx.Timeout(s.webhook_timeout, connect=s.webhook_connect_timeout),
            max_connections=s.max_jobs,
        )
        if not s.smtp_host:
            # Allowed outside staging/prod (settings refuse it there): say so at every start.
            log.warning(
                "smtp_not_configured",
                detail="SMTP_HOST is unset: sign-up and password-reset mail cannot be sent; "
                "its jobs fail and are retried",
            )
        self._task = asyncio.create_task(self._supervise(), name="arq-supervisor")
        self.queue_monitor.start()

    async def _supervise(self) -> None:
        delay = 0.5
        while not self._stopping:
            self.worker = self._build()
            started = time.monotonic()
            try:
                await self.worker.async_run()
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception as exc:  # Redis went away: back off, rebuild, go on.
                if time.monotonic() - started > 30:
                    delay = 0.5  # It had been running fine: this is a new outage.
                log.warning("arq_loop_failed", error=str(exc), retry_in=delay)
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.restart_max_delay)

    async def stop(self) -> None:
        """Stop taking jobs, let running jobs finish (bounded), then cancel what remains."""
        self._stopping = True
        await self.queue_monitor.stop()
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
            await self._main_loop_ended(worker)
            await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
            with contextlib.suppress(Exception):
                await worker.pool.delete(worker.health_check_key)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()
        log.info("worker_stopped")

    @staticmethod
    async def _main_loop_ended(worker: Worker, *, attempts: int = 100) -> None:
        """Cancel ARQ's main loop until it has ended (about 10 s at most).

        One cancel can be absorbed by a Redis call in flight at that instant: a CI run saw the
        loop go on picking cron jobs after SIGTERM until the process was killed. So the cancel
        is repeated until the task is done."""
        main = worker.main_task
        for _ in range(attempts):
            if main is None or main.done():
                return
            main.cancel()
            await asyncio.wait({main}, timeout=0.1)
        log.warning("arq_loop_outlived_shutdown")

    @staticmethod
    async def _jobs_done(worker: Worker) -> None:
        running = [task for task in worker.tasks.values() if not task.done()]
        if running:
            await asyncio.wait(running)
