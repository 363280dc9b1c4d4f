"""Account mail shared by the API (adds token rows, enqueues) and the worker (mails them)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data.models import AccountToken
from tripline_common.messaging.job_registry import SEND_ACCOUNT_MAIL
from tripline_common.messaging.queue import JobQueue


class AccountMail(StrEnum):
    """Which message a token is mailed in."""

    VERIFY_EMAIL = "verify_email"  # A new sign-up: confirm the address.
    SIGNUP_ATTEMPT = "signup_attempt"  # A sign-up for a taken address: a reset link instead.
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a password-reset request, not a secret.


def enqueue_account_mail(
    *, session: AsyncSession, queue: JobQueue, token: AccountToken, mail: AccountMail
) -> None:
    """Mail `token` (a flushed row) once `session` commits; only the row's ID goes in the job."""
    queue.enqueue_after_commit(
        session,
        SEND_ACCOUNT_MAIL.name,
        str(token.id),
        mail.value,
        # Per token: enqueueing it twice mails it once.
        job_id=SEND_ACCOUNT_MAIL.job_id(token.id),
    )
