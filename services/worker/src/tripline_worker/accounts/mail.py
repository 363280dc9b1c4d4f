"""Compose account messages and send them to the configured SMTP server (aiosmtplib)."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import urlencode

import aiosmtplib

from tripline_common.data import AccountMail
from tripline_worker.settings import WorkerServiceSettings


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
