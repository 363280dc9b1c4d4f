"""Account mail shared by the API (adds token rows, enqueues) and the worker (mails them)."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data.models import AccountToken
from tripline_common.messaging.queue import JobQueue

SEND_ACCOUNT_MAIL = "send_account_mail"


class AccountMail(StrEnum):
    """Which message a token is mailed in."""

    VERIFY_EMAIL = "verify_email"  # A new sign-up: confirm the address.
    SIGNUP_ATTEMPT = "signup_attempt"  # A sign-up for a taken address: a reset link instead.
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a password-reset request, not a secret.


def send_account_mail_job_id(token_id: uuid.UUID | str) -> str:
    """The job ID of one token's mail: enqueueing it twice mails it once."""
    return f"{SEND_ACCOUNT_MAIL}:{token_id}"


def enqueue_account_mail(
    *, session: AsyncSession, queue: JobQueue, token: AccountToken, mail: AccountMail
) -> None:
    """Mail `token` (a flushed row) once `session` commits; only the row's ID goes in the job."""
    queue.enqueue_after_commit(
        session,
        SEND_ACCOUNT_MAIL,
        str(token.id),
        mail.value,
        job_id=send_account_mail_job_id(token.id),
    )
