"""Account mail job: draw a token for an `account_tokens` row, store its hash, mail it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from arq import Retry
from sqlalchemy import select

from tripline_common.data import AccountMail, unit_of_work
from tripline_common.data.models import AccountToken, User
from tripline_common.security import hash_token, new_opaque_token
from tripline_worker.accounts.mail import compose, send

log = structlog.get_logger("tripline.worker.accounts")

MAX_DEFER_SECONDS = 300


async def send_account_mail(ctx: dict[str, Any], token_id: str, mail: str) -> str:
    """Mail the token of row `token_id` in message `mail`.

    The token is drawn here and its hash stored in the same transaction that sends: if the SMTP
    server refuses or cannot be reached, nothing is stored and ARQ runs the job again later
    (exponential backoff, up to the worker's MAX_TRIES). A row already mailed, used or expired
    is skipped, so a repeated job mails nothing.
    """
    settings = ctx["settings"]
    async with unit_of_work(ctx["session_factory"]) as session:
        row = await session.scalar(
            select(AccountToken)
            .where(AccountToken.id == uuid.UUID(token_id))  # type: ignore[arg-type]
            .with_for_update(skip_locked=True)
        )
        if (
            row is None
            or row.token_hash is not None
            or row.used_at is not None
            or row.expires_at <= datetime.now(UTC)
        ):
            log.info("account_mail_skipped", token_id=token_id)
            return "skipped"
        user = await session.get(User, row.user_id)
        assert user is not None
        token = new_opaque_token()
        row.token_hash = hash_token(token)
        message = compose(
            settings, mail=AccountMail(mail), to=user.email, name=user.display_name, token=token
        )
        try:
            await send(settings, message)
        except Exception as exc:
            defer = min(MAX_DEFER_SECONDS, 2 ** int(ctx.get("job_try") or 1))
            log.warning(
                "account_mail_failed",
                error_type=type(exc).__name__,
                error=str(exc)[:200],
                retry_in=defer,
            )
            raise Retry(defer=defer) from exc
        await session.flush()
    log.info("account_mail_sent", token_id=token_id, mail=mail)
    return "sent"
