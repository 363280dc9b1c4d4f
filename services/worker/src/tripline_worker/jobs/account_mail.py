"""`send_account_mail`: the ARQ job that mails one account token (logic in `accounts.mail`)."""

from __future__ import annotations

import uuid

import structlog
from arq import Retry

from tripline_common.data import AccountMail
from tripline_worker.accounts.mail import MailNotSentError, mail_token
from tripline_worker.context import ArqContext, context, job_try

log = structlog.get_logger("tripline.worker.accounts")

MAX_DEFER_SECONDS = 300


async def send_account_mail(ctx: ArqContext, token_id: str, mail: str) -> str:
    """Mail the token of row `token_id` in message `mail`.

    If the SMTP server refuses or cannot be reached, nothing is stored and ARQ runs the job
    again later (exponential backoff, up to the worker's MAX_TRIES). A row already mailed, used
    or expired is skipped, so a repeated job mails nothing.
    """
    worker = context(ctx)
    try:
        outcome = await mail_token(
            session_factory=worker.session_factory,
            settings=worker.settings,
            token_id=uuid.UUID(token_id),
            mail=AccountMail(mail),
        )
    except MailNotSentError as exc:
        defer = min(MAX_DEFER_SECONDS, 2 ** job_try(ctx))
        cause = exc.__cause__ or exc
        log.warning(
            "account_mail_failed",
            error_type=type(cause).__name__,
            error=str(cause)[:200],
            retry_in=defer,
        )
        raise Retry(defer=defer) from cause
    if outcome == "skipped":
        log.info("account_mail_skipped", token_id=token_id)
    else:
        log.info("account_mail_sent", token_id=token_id, mail=mail)
    return outcome
