"""Account mail: drawn, hashed and sent over real SMTP; an outage is retried, nothing is lost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from arq import Retry
from pydantic import ValidationError

from tripline_common.data import AccountMail
from tripline_common.data.models import AccountToken, AccountTokenPurpose, User
from tripline_common.security import hash_token
from tripline_devstack import free_port
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
    return {**ctx, "settings": settings}


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
