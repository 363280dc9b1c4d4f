"""Account mail: drawn, hashed and sent over real SMTP; an outage is retried, nothing is lost."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from arq import Retry
from pydantic import ValidationError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlmodel import col
from worker_factories import with_resources

from tripline_common.data import AccountMail, asyncpg_dsn
from tripline_common.data.models import AccountToken, AccountTokenPurpose, User
from tripline_common.security import hash_token
from tripline_devstack import DevMailServer, ReceivedMail, free_port
from tripline_worker.jobs.account_mail import send_account_mail
from tripline_worker.settings import WorkerServiceSettings


async def add_token(
    session_factory, purpose=AccountTokenPurpose.VERIFY_EMAIL
) -> tuple[AccountToken, str]:
    async with session_factory() as session:
        user = User(
            email=f"m-{uuid.uuid4().hex[:8]}@example.com", display_name="Mia", password_hash="x"
        )
        session.add(user)
        await session.flush()
        token = AccountToken(
            user_id=user.id,
            purpose=purpose,
            password_hash="x",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        session.add(token)
        await session.commit()
        return token, user.email


def with_smtp(ctx, worker_settings, port: int) -> dict:
    settings = worker_settings(
        smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, public_base_url="https://t.dev"
    )
    return with_resources(ctx, settings=settings)


async def test_a_mailed_link_carries_a_token_whose_hash_alone_is_stored(
    ctx, worker_settings, session_factory, mail_server
) -> None:
    token, email = await add_token(session_factory)
    job_ctx = with_smtp(ctx, worker_settings, mail_server.port)
    assert await send_account_mail(job_ctx, str(token.id), AccountMail.VERIFY_EMAIL) == "sent"
    [mail] = mail_server.to(email)
    [link] = mail.links
    assert link.startswith("https://t.dev/v1/accounts/verify-email?token=")
    raw = link.split("token=")[1]
    async with session_factory() as session:
        stored = await session.get(AccountToken, token.id)
    assert stored is not None and stored.token_hash == hash_token(raw)
    # Run again (a repeated job): nothing more is sent.
    assert await send_account_mail(job_ctx, str(token.id), AccountMail.VERIFY_EMAIL) == "skipped"
    assert len(mail_server.to(email)) == 1


async def test_a_link_works_the_moment_its_mail_arrives(ctx, worker_settings, database_url) -> None:
    """The hash is committed before the message is sent: a reader quick enough to click while
    the worker is still finishing (a race seen in CI) finds a valid link. The rows are really
    committed here (not in the test's rolled-back transaction), so another connection sees
    exactly what a reader would."""
    engine = create_async_engine(database_url)
    committed = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    token, email = await add_token(committed)
    stored_on_arrival: list[bool] = []

    async def stored(raw: str) -> bool:
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            return bool(
                await connection.fetchval(
                    "SELECT count(*) FROM account_tokens WHERE token_hash = $1", hash_token(raw)
                )
            )
        finally:
            await connection.close()

    def on_message(mail: ReceivedMail) -> None:
        # Runs while the worker waits for the SMTP reply: what a reader would see right now.
        [link] = mail.links
        with ThreadPoolExecutor(1) as pool:
            check = pool.submit(asyncio.run, stored(link.split("token=")[1]))
            stored_on_arrival.append(check.result(timeout=20))

    server = DevMailServer(on_message=on_message)
    server.start()
    try:
        job_ctx = with_resources(
            with_smtp(ctx, worker_settings, server.port), session_factory=committed
        )
        assert await send_account_mail(job_ctx, str(token.id), AccountMail.VERIFY_EMAIL) == "sent"
    finally:
        server.stop()
        async with committed() as session:
            await session.execute(delete(User).where(col(User.id) == token.user_id))
            await session.commit()
        await engine.dispose()
    assert len(server.to(email)) == 1
    assert stored_on_arrival == [True]


async def test_a_mail_outage_is_retried_and_stores_no_token_until_sent(
    ctx, worker_settings, session_factory, mail_server
) -> None:
    token, email = await add_token(session_factory, AccountTokenPurpose.RESET_PASSWORD)
    down = with_smtp(ctx, worker_settings, free_port())  # Nothing listens there.
    with pytest.raises(Retry):
        await send_account_mail(down, str(token.id), AccountMail.RESET_PASSWORD)
    async with session_factory() as session:
        assert (await session.get(AccountToken, token.id)).token_hash is None  # type: ignore[union-attr]
    up = with_smtp(ctx, worker_settings, mail_server.port)
    assert await send_account_mail(up, str(token.id), AccountMail.RESET_PASSWORD) == "sent"
    [mail] = mail_server.to(email)
    assert mail.subject == "Reset your Tripline password" and len(mail.tokens) == 1


def test_production_refuses_to_start_the_worker_without_an_smtp_host() -> None:
    strong = {"environment": "prod", "secret_key": "k" * 40, "_env_file": None}
    with pytest.raises(ValidationError, match="SMTP_HOST must be set"):
        WorkerServiceSettings(**strong)  # type: ignore[arg-type]
    assert WorkerServiceSettings(**strong, smtp_host="smtp.example.com").smtp_host  # type: ignore[arg-type]
