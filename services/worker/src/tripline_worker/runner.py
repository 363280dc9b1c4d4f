"""Runs the ARQ worker inside the worker app's event loop: supervised, drained on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import httpx
import structlog
from arq import Retry, cron
from arq.cron import CronJob
from arq.worker import Function, Worker, func

from tripline_common.messaging import (
    CHECK_LOST_SIGNAL,
    DELIVER_WEBHOOK,
    IMPORT_WAYPOINTS,
    PROCESS_BATCH,
    PURGE_SESSIONS,
    PURGE_TELEMETRY,
    REQUEUE_STUCK_BATCHES,
    REQUEUE_STUCK_DELIVERIES,
    REQUEUE_STUCK_JOBS,
    SEND_ACCOUNT_MAIL,
    JobSpec,
    correlated_job,
    dump_job,
    load_job,
)
from tripline_common.platform import report_job_failures, trace_exemplar
from tripline_common.web import Resources
from tripline_worker.context import ArqContext, WorkerContext, context
from tripline_worker.jobs.account_mail import send_account_mail
from tripline_worker.jobs.batches import process_batch
from tripline_worker.jobs.maintenance import purge_sessions, purge_telemetry
from tripline_worker.jobs.sweepers import (
    requeue_stuck_batches,
    requeue_stuck_deliveries,
    requeue_stuck_jobs,
)
from tripline_worker.jobs.trips import check_lost_signal
from tripline_worker.jobs.waypoint_import import import_waypoints
from tripline_worker.jobs.webhooks import deliver_webhook
from tripline_worker.metrics import JobMetrics
from tripline_worker.outages import retry_when_unavailable
from tripline_worker.probe import health_check_key
from tripline_worker.settings import WorkerServiceSettings
from tripline_worker.webhooks.delivery import webhook_client

log = structlog.get_logger("tripline.worker")

# ARQ runs of a delivery beyond its own attempt bound: room for runs cut short by a worker
# that died, so that the delivery, not ARQ, decides when to give up (and records it).
DELIVERY_SPARE_TRIES = 3

JOB_FUNCTIONS: Mapping[JobSpec, Callable[..., Awaitable[Any]]] = {
    PROCESS_BATCH: process_batch,
    DELIVER_WEBHOOK: deliver_webhook,
    SEND_ACCOUNT_MAIL: send_account_mail,
    IMPORT_WAYPOINTS: import_waypoints,
    REQUEUE_STUCK_BATCHES: requeue_stuck_batches,
    REQUEUE_STUCK_DELIVERIES: requeue_stuck_deliveries,
    REQUEUE_STUCK_JOBS: requeue_stuck_jobs,
    CHECK_LOST_SIGNAL: check_lost_signal,
    PURGE_TELEMETRY: purge_telemetry,
    PURGE_SESSIONS: purge_sessions,
}
"""The ARQ job (in `tripline_worker.jobs`) behind each entry of the job registry."""


T = TypeVar("T")


def instrumented(func: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Record a job's metrics through the worker context's `JobMetrics`; a run inside a
    sampled consumer span leaves its trace ID as the exemplar of its duration."""
    name = func.__name__

    @functools.wraps(func)
    async def wrapper(ctx: ArqContext, *args: Any, **kwargs: Any) -> T:
        metrics = context(ctx).metrics
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
            duration = time.perf_counter() - started
            metrics.duration.labels(name).observe(duration, trace_exemplar())

    return wrapper


def _wrapped(spec: JobSpec) -> Callable[..., Coroutine[Any, Any, Any]]:
    """How every job runs: correlation ID, log context and consumer span, one Sentry event
    when it fails, metrics, outages turned into retries."""
    function = JOB_FUNCTIONS[spec]
    return correlated_job(report_job_failures(instrumented(retry_when_unavailable(function))))


def worker_functions(settings: WorkerServiceSettings) -> list[Function]:
    """The registry's on-demand jobs, as this worker runs them.

    Their results are not kept (`JobSpec.keep_result`): the row in Postgres is the result.
    """
    tries = {DELIVER_WEBHOOK: settings.webhook_max_attempts + DELIVERY_SPARE_TRIES}
    return [
        func(
            _wrapped(spec),
            name=spec.name,
            keep_result=spec.keep_result,
            max_tries=tries.get(spec),  # None: the worker's MAX_TRIES.
        )
        for spec in JOB_FUNCTIONS
        if not spec.periodic
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
    """The registry's periodic jobs, on their schedules. ARQ's `unique` cron job IDs make each
    run happen on one worker only, however many replicas there are. Their timeout is the job
    timeout (see `job_timeout`)."""
    sweep = settings.sweep_interval_seconds
    schedules: dict[JobSpec, dict[str, Any]] = {
        REQUEUE_STUCK_BATCHES: {"run_at_startup": True, **every(sweep)},
        REQUEUE_STUCK_DELIVERIES: every(sweep, offset=1),
        REQUEUE_STUCK_JOBS: every(sweep, offset=2),
        CHECK_LOST_SIGNAL: every(settings.lost_signal_check_seconds, offset=3),
        PURGE_TELEMETRY: {"minute": {7}, "second": {10}},
        PURGE_SESSIONS: {"minute": {37}, "second": {10}},
    }
    return [
        cron(_wrapped(spec), name=spec.name, keep_result=spec.keep_result, **schedule)
        for spec, schedule in schedules.items()
    ]


def arq_worker(worker_context: WorkerContext, **options: Any) -> Worker:
    """ARQ's `Worker` as this service runs it, on the worker context's Redis and settings
    (`options` override ARQ's arguments: tests run it in burst mode with functions of theirs)."""
    s = worker_context.settings
    arguments: dict[str, Any] = {
        "functions": worker_functions(s),
        "cron_jobs": cron_jobs(s),
        "queue_name": s.arq_queue_name,
        "redis_pool": worker_context.redis,
        # The worker reads jobs (and writes results) itself: the trace envelope's pair.
        "job_serializer": dump_job,
        "job_deserializer": load_job,
        "handle_signals": False,
        "max_jobs": s.max_jobs,
        "poll_delay": s.poll_delay,
        "job_timeout": s.job_timeout,
        "max_tries": s.max_tries,
        "keep_result": s.keep_result,
        "health_check_interval": s.health_check_interval,
        "health_check_key": health_check_key(s),
        "ctx": worker_context.arq_context(),
    }
    return Worker(**{**arguments, **options})


class ArqRunner:
    """Owns the ARQ `Worker`: restarts it after a Redis outage, drains it on shutdown.

    Signals are handled by the HTTP server: at SIGTERM it fails readiness and tells this runner
    to take no new job (`stop_taking_jobs`); after the drain the runner is asked to stop: it
    lets running jobs finish for `job_completion_wait` seconds and cancels the rest, which ARQ
    leaves in the queue for another worker at once (jobs are idempotent).
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

    def _build(self) -> Worker:
        assert self.http is not None, "start() creates the webhook client first"
        worker_context = WorkerContext(
            settings=self.settings,
            session_factory=self.resources.session_factory,
            job_queue=self.resources.queue,
            redis=self.resources.redis,
            metrics=self.metrics,
            webhook_client=self.http,
        )
        return arq_worker(worker_context)

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

    def stop_taking_jobs(self) -> None:
        """Take no new job from now on (called from the SIGTERM handler, before the drain: a
        job enqueued while the pod drains is left for another worker). Running jobs go on; a
        pick already in flight at that instant (one Redis round trip) completes."""
        self._stopping = True
        if self.worker is not None:
            self.worker.allow_pick_jobs = False

    async def stop(self) -> None:
        """Stop taking jobs, let running jobs finish (bounded), then cancel what remains."""
        self.stop_taking_jobs()
        worker = self.worker
        if worker is not None:
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
