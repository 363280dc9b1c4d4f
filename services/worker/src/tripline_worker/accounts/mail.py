"""Account mail: draw a token for an `account_tokens` row, store its hash, mail it (aiosmtplib)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal
from urllib.parse import urlencode

import aiosmtplib
from sqlalchemy import select, update
from sqlmodel import col

from tripline_common.data import AccountMail, SessionFactory, unit_of_work
from tripline_common.data.models import AccountToken, User
from tripline_common.security import hash_token, new_opaque_token
from tripline_worker.settings import WorkerServiceSettings


class MailNotSentError(Exception):
    """The SMTP server refused the message or could not be reached (the cause says which)."""


async def mail_token(
    *,
    session_factory: SessionFactory,
    settings: WorkerServiceSettings,
    token_id: uuid.UUID,
    mail: AccountMail,
) -> Literal["sent", "skipped"]:
    """Mail the token of row `token_id` in message `mail`.

    The token is drawn here and its hash committed before the message goes out, so a link
    works the moment its mail arrives. If the message cannot be sent (`MailNotSentError`), the
    hash is taken back and a retry draws a new token. A row already mailed, used or expired is
    skipped, so a repeated call mails nothing. The price of that order: a worker killed between
    the commit and the send leaves the row mailed-but-unsent; the user asks for another mail.
    """
    async with unit_of_work(session_factory) as session:
        row = await session.scalar(
            select(AccountToken)
            .where(AccountToken.id == token_id)  # type: ignore[arg-type,unused-ignore]
            .with_for_update(skip_locked=True)
        )
        if (
            row is None
            or row.token_hash is not None
            or row.used_at is not None
            or row.expires_at <= datetime.now(UTC)
        ):
            return "skipped"
        user = await session.get(User, row.user_id)
        assert user is not None
        token = new_opaque_token()
        row.token_hash = hash_token(token)
        message = compose(settings, mail=mail, to=user.email, name=user.display_name, token=token)
    try:
        await send(settings, message)
    except Exception as exc:
        async with unit_of_work(session_factory) as session:
            await session.execute(
                update(AccountToken)
                .where(
                    col(AccountToken.id) == token_id,
                    col(AccountToken.token_hash) == hash_token(token),
                    col(AccountToken.used_at).is_(None),
                )
                .values(token_hash=None)
            )
        raise MailNotSentError(str(exc)) from exc
    return "sent"


def compose(
    settings: WorkerServiceSettings, *, mail: AccountMail, to: str, name: str, token: str
) -> EmailMessage:
    """The message of `mail` for `to`, carrying `token` (a link, or the token to paste)."""
    base = settings.public_base_url.rstrip("/")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    if mail is AccountMail.VERIFY_EMAIL:
        link = f"{base}/v1/accounts/verify-email?{urlencode({'token': token})}"
        message["Subject"] = "Confirm your email address for Tripline"
        body = (
            f"Hello {name},\n\n"
            "Confirm your address to finish signing up for Tripline:\n\n"
            f"{link}\n\n"
            "The link works once. If you did not sign up, ignore this message: without the "
            "link, nobody can use an account with your address.\n"
        )
    else:
        reset = (
            f"Reset link token: {token}\n\n"
            f"Send it with your new password: POST {base}/v1/accounts/password-reset\n"
            '{"token": "<the token above>", "new_password": "<your new password>"}\n\n'
            "The token works once and expires within the hour.\n"
        )
        if mail is AccountMail.SIGNUP_ATTEMPT:
            message["Subject"] = "Someone tried to sign up to Tripline with your address"
            body = (
                f"Hello {name},\n\n"
                "Someone (maybe you) tried to create a Tripline account with this address, "
                "which already has one. Nothing was changed. If you forgot your password, "
                "you can set a new one:\n\n" + reset + "\nIf it was not you, ignore this message."
            )
        else:
            message["Subject"] = "Reset your Tripline password"
            body = (
                f"Hello {name},\n\nSomeone (maybe you) asked to reset your password.\n\n"
                + reset
                + "\nIf it was not you, ignore this message: your password stays as it is."
            )
    message.set_content(body)
    return message


async def send(settings: WorkerServiceSettings, message: EmailMessage) -> None:
    """Send `message` through SMTP_HOST; raises on any refusal or connection failure."""
    if not settings.smtp_host:
        raise RuntimeError("SMTP_HOST is not set: account mail cannot be sent")
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=password,
        use_tls=settings.smtp_tls,
        start_tls=settings.smtp_starttls,
        timeout=settings.smtp_timeout,
    )
