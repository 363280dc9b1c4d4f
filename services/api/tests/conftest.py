"""API test helpers: the app on the test database, users, and tokens for them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import User
from tripline_common.messaging import SEND_ACCOUNT_MAIL, JobQueue, create_redis


@contextlib.asynccontextmanager
async def _worker_job_context(settings: Any, session_factory: Any) -> AsyncIterator[dict[str, Any]]:
    """What ARQ passes a worker's job, on the test's database and Redis (`settings` are the
    worker's). The worker is imported here only: the API itself never imports it."""
    from prometheus_client import CollectorRegistry

    from tripline_worker.context import WorkerContext
    from tripline_worker.metrics import JobMetrics

    redis = create_redis(settings)
    try:
        async with httpx.AsyncClient() as http:
            worker = WorkerContext(
                settings=settings,
                session_factory=session_factory,
                job_queue=JobQueue(redis, settings.arq_queue_name),
                redis=redis,
                metrics=JobMetrics(CollectorRegistry()),
                webhook_client=http,
            )
            yield {**worker.arq_context(), "job_id": "test-job", "job_try": 1}
    finally:
        await redis.aclose()


@pytest.fixture
def worker_job_context() -> Callable[..., contextlib.AbstractAsyncContextManager[dict[str, Any]]]:
    """`async with worker_job_context(worker_settings, session_factory) as ctx:` runs a
    worker's job in-process, as ARQ would."""
    return _worker_job_context


@pytest.fixture
def api_settings(make_settings: Callable[..., Any]) -> ApiSettings:
    return make_settings(ApiSettings)


@pytest.fixture
def service_settings(api_settings: ApiSettings) -> ApiSettings:
    """The settings `auth_headers` signs tokens with."""
    return api_settings


@pytest.fixture
async def client(api_settings: ApiSettings, app_client) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the API in-process (lifespan run, test transaction)."""
    async with app_client(create_api_app(api_settings)) as api:
        yield api


@pytest.fixture
async def owner(make_user) -> User:
    """A signed-up user who owns the resources a test creates."""
    return await make_user()


@pytest.fixture
async def headers(owner: User, auth_headers) -> dict[str, str]:
    """`owner`'s Authorization header."""
    return await auth_headers(owner)


@pytest.fixture
def deliver_account_mail(
    make_settings, session_factory, mail_server, api_settings, worker_job_context
) -> Callable[[], Awaitable[int]]:
    """`await deliver_account_mail()` runs the account-mail jobs the API queued, with the
    worker's own job function, over real SMTP to `mail_server`; returns how many it ran."""
    done: set[str] = set()

    async def deliver() -> int:
        # The worker's own job and settings: what runs in production, minus ARQ's polling.
        from tripline_worker.jobs.account_mail import send_account_mail
        from tripline_worker.settings import WorkerServiceSettings

        worker_settings = make_settings(
            WorkerServiceSettings,
            smtp_host="127.0.0.1",
            smtp_port=mail_server.port,
            smtp_starttls=False,
            public_base_url="http://testserver",
        )
        redis = create_redis(api_settings)
        try:
            jobs = await redis.queued_jobs(queue_name=api_settings.arq_queue_name)
        finally:
            await redis.aclose()
        ran = 0
        for job in sorted(jobs, key=lambda job: job.score):
            if job.function != SEND_ACCOUNT_MAIL.name or job.job_id in done:
                continue
            async with worker_job_context(worker_settings, session_factory) as ctx:
                await send_account_mail(ctx, *job.args)
            done.add(str(job.job_id))
            ran += 1
        return ran

    return deliver
