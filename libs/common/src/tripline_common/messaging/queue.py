"""Redis and ARQ: the process's pool, enqueue-after-commit, correlation IDs and traces in jobs."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import sentry_sdk
import structlog
from arq import Retry
from arq.connections import ArqRedis, RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.messaging.job_tracing import (
    JOB_ENQUEUED,
    consumer_span,
    dump_job,
    load_job,
    producer_span,
)
from tripline_common.messaging.redis_connections import SAFE_CONNECTIONS
from tripline_common.platform.correlation import bind_request_id, get_request_id, new_request_id
from tripline_common.platform.settings import CommonSettings

log = structlog.get_logger("tripline.queue")

P = ParamSpec("P")
T = TypeVar("T")

# The keyword argument that carries the correlation ID into every job.
REQUEST_ID_KWARG = "request_id"
_PENDING_KEY = "tripline.pending_jobs"


def redis_settings(settings: CommonSettings) -> RedisSettings:
    """ARQ's connection settings from our Redis URL, with bounded timeouts and retries."""
    rs = RedisSettings.from_dsn(settings.redis_url)
    rs.conn_timeout = int(max(1, settings.redis_timeout))
    rs.conn_retries = 5
    rs.conn_retry_delay = 1
    rs.retry_on_timeout = True
    return rs


def create_redis(settings: CommonSettings) -> ArqRedis:
    """The process's one Redis client (an ARQ pool: plain Redis commands work on it too).

    It connects lazily, so a process starts while Redis is down and `/readyz` says so.
    """
    pool = ConnectionPool.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        socket_keepalive=True,
        health_check_interval=30,
        # Reconnect through a blip (a failover, a restart): a command whose connection broke
        # is retried on a fresh one, 3 times over ~0.35 s, before the error reaches the caller.
        # Timeouts are not retried: a hung server would multiply the wait of every caller.
        retry=RedisRetry(ExponentialBackoff(cap=0.2, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError],
        max_connections=64,
    )
    pool.connection_class = SAFE_CONNECTIONS[pool.connection_class]
    # Jobs carry their trace context in an envelope key of their own (see `job_tracing`).
    return ArqRedis(
        pool,
        default_queue_name=settings.arq_queue_name,
        job_serializer=dump_job,
        job_deserializer=load_job,
    )


class JobQueue:
    """Enqueues ARQ jobs; inside a unit of work, only after the transaction commits.

    Every job carries the current correlation ID, and a deterministic job ID from the job
    registry (`PROCESS_BATCH.job_id(batch_id)`), so enqueueing the same work twice runs it once.
    Each enqueue is a producer span whose context the job carries (`job_tracing`).
    """

    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    def bind(self, session: AsyncSession) -> None:
        """Attach a pending-jobs list to a session (called by `db.unit_of_work`)."""
        session.info[_PENDING_KEY] = []

    def discard(self, session: AsyncSession) -> None:
        """Forget the jobs deferred in a session whose transaction rolled back."""
        dropped = session.info.pop(_PENDING_KEY, [])
        if dropped:
            log.info("jobs_discarded_after_rollback", count=len(dropped))

    def enqueue_after_commit(
        self, session: AsyncSession, function: str, *args: Any, job_id: str, **kwargs: Any
    ) -> None:
        """Defer a job until `session` commits; it is dropped if the session rolls back."""
        if _PENDING_KEY not in session.info:
            raise RuntimeError("enqueue_after_commit needs a session from db.unit_of_work")
        kwargs.setdefault(REQUEST_ID_KWARG, get_request_id())
        session.info[_PENDING_KEY].append((function, args, job_id, kwargs))

    async def flush(self, session: AsyncSession) -> None:
        """Enqueue what the committed session deferred.

        A Redis failure here is logged, not raised: the rows are committed, and the sweeper
        re-enqueues committed work that never reached a worker (nothing is lost).
        """
        for function, args, job_id, kwargs in session.info.pop(_PENDING_KEY, []):
            try:
                await self.enqueue(function, *args, job_id=job_id, **kwargs)
            except (RedisError, OSError) as exc:
                log.warning(
                    "enqueue_failed_after_commit", job=function, job_id=job_id, error=str(exc)
                )

    async def enqueue(self, function: str, *args: Any, job_id: str, **kwargs: Any) -> bool:
        """Enqueue now; returns False when a job with this ID is already queued or kept.

        Its first run continues the current trace (a child of this enqueue's span)."""
        return await self._send(function, args, job_id, kwargs, follows=False)

    async def _send(
        self,
        function: str,
        args: tuple[Any, ...],
        job_id: str,
        kwargs: dict[str, Any],
        *,
        follows: bool,
    ) -> bool:
        kwargs.setdefault(REQUEST_ID_KWARG, get_request_id())
        with producer_span(function, self.queue_name, job_id, follows=follows) as span:
            job = await self.redis.enqueue_job(
                function, *args, _job_id=job_id, _queue_name=self.queue_name, **kwargs
            )
            span.set_attribute(JOB_ENQUEUED, job is not None)
        log.info("job_enqueued" if job else "job_already_enqueued", job=function, job_id=job_id)
        return job is not None

    async def requeue(self, function: str, *args: Any, job_id: str, **kwargs: Any) -> bool:
        """Enqueue again work that Postgres says is still pending (the sweepers' call).

        Like `enqueue`, except for a job ID held only by a kept *result*, with no job queued
        or running: that run ended without doing the work. (When Redis restarts empty between
        a worker marking a job in progress and reading it, ARQ records the job as "expired", a
        failure kept for the worker's `keep_result`; our jobs keep no result of their own.)
        The stale result is dropped and the job enqueued now, not once it expires.

        The job's run starts a trace of its own, linked to the sweeper's that enqueued it.
        """
        if await self._send(function, args, job_id, dict(kwargs), follows=True):
            return True
        if await self.redis.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id):
            return False  # Queued or running: the work is on its way.
        if not await self.redis.delete(result_key_prefix + job_id):
            return False
        log.warning("stale_job_result_dropped", job=function, job_id=job_id)
        return await self._send(function, args, job_id, dict(kwargs), follows=True)


JobFunc = Callable[..., Awaitable[T]]


def correlated_job(func: JobFunc[T]) -> Callable[..., Coroutine[Any, Any, T]]:
    """Wrap an ARQ job so its log lines and Sentry events carry the enqueuing request's ID,
    and its run is a consumer span (`job_tracing.consumer_span`) with that ID as an attribute.

    The wrapped function receives the usual `ctx` and its own arguments; the `request_id`
    keyword argument that `JobQueue` adds is consumed here.

    The run itself (`job_started`, `job_succeeded`, `job_retry_scheduled`, with durations) is
    logged at DEBUG: at INFO a job says what it did in one line of its own (`batch_processed`),
    or nothing when a periodic job found nothing to do. Only `job_failed` is a warning.
    """

    @functools.wraps(func)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        # A job without one (a cron run) gets its own, so its log lines and what it
        # raises (lost-signal alerts) can still be followed.
        request_id = kwargs.pop(REQUEST_ID_KWARG, None) or new_request_id()
        # Jobs run concurrently in one event loop: each gets its own Sentry scope and log
        # context. The span encloses the run's log lines and Sentry event.
        with (
            sentry_sdk.isolation_scope() as scope,
            consumer_span(func.__name__, ctx, request_id),
        ):
            structlog.contextvars.clear_contextvars()
            bind_request_id(request_id)
            structlog.contextvars.bind_contextvars(
                job=func.__name__, job_id=ctx.get("job_id"), job_try=ctx.get("job_try")
            )
            scope.set_tag("job", func.__name__)
            started = time.perf_counter()
            log.debug("job_started")
            try:
                result = await func(ctx, *args, **kwargs)
            except Retry as retry:
                # Whoever raised `Retry` has said why, with its own `retry_in`.
                log.debug(
                    "job_retry_scheduled",
                    retry_in=round((retry.defer_score or 0) / 1000, 3),
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
                raise
            except Exception as exc:
                log.warning(
                    "job_failed",
                    error_type=type(exc).__name__,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
                raise
            else:
                log.debug(
                    "job_succeeded", duration_ms=round((time.perf_counter() - started) * 1000, 2)
                )
                return result
            finally:
                structlog.contextvars.clear_contextvars()
                bind_request_id(None)

    return wrapper
