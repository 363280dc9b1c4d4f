"""API test helpers: the app on the test database, users, and tokens for them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data import SEND_ACCOUNT_MAIL
from tripline_common.data.models import User, UserRole
from tripline_common.messaging import create_redis
from tripline_common.security import hash_password, open_session

PASSWORD = "correct horse battery"


@pytest.fixture
def api_settings(make_settings: Callable[..., Any]) -> ApiSettings:
    return make_settings(ApiSettings)


@pytest.fixture
async def client(api_settings: ApiSettings, app_client) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the API in-process (lifespan run, test transaction)."""
    async with app_client(create_api_app(api_settings)) as api:
        yield api


@pytest.fixture
def make_user(session_factory) -> Callable[..., Awaitable[User]]:
    """`await make_user(role=UserRole.USER, email=None, active=True)` -> a stored user whose
    password is `PASSWORD` and whose address is confirmed (sign-up's link followed)."""

    async def make(
        role: UserRole = UserRole.USER, email: str | None = None, active: bool = True
    ) -> User:
        async with session_factory() as session:
            user = User(
                email=email or f"user-{uuid.uuid4().hex[:10]}@example.com",
                display_name="Test User",
                role=role,
                is_active=active,
                password_hash=await hash_password(PASSWORD),
                email_verified_at=datetime.now(UTC),
            )
            session.add(user)
            await session.commit()
            return user

    return make


@pytest.fixture
def auth_headers(session_factory, api_settings) -> Callable[[User], Awaitable[dict[str, str]]]:
    """`await auth_headers(user)` -> an Authorization header with a token for a new session."""

    async def make(user: User) -> dict[str, str]:
        async with session_factory() as session:
            issued = await open_session(session=session, settings=api_settings, user=user)
            await session.commit()
        return {"Authorization": f"Bearer {issued.access_token}"}

    return make


@pytest.fixture
def deliver_account_mail(
    make_settings, session_factory, mail_server, api_settings
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
            if job.function != SEND_ACCOUNT_MAIL or job.job_id in done:
                continue
            ctx = {"settings": worker_settings, "session_factory": session_factory, "job_try": 1}
            await send_account_mail(ctx, *job.args)
            done.add(str(job.job_id))
            ran += 1
        return ran

    return deliver
