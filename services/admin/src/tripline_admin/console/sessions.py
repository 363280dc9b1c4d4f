"""Signing in to and out of the console: checks, the `auth_sessions` row, the audit trail.

A console session is an ordinary row of `auth_sessions` (kind `console`), so operators see and
revoke it like any API session, and disabling a user ends it. It has no refresh token (the
console never hands one out) and a shorter life than an API session.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tripline_admin.console.security import STAFF
from tripline_admin.settings import AdminSettings
from tripline_common.data import AuditActor, AuditOrigin, audit
from tripline_common.data.models import AuthSession, SessionKind, User
from tripline_common.platform import ForbiddenError, UnauthorizedError
from tripline_common.security import (
    Principal,
    admit_login_attempt,
    authenticate,
    open_session,
    revoke_session,
)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: a session, or the reason it was refused."""

    user: User | None = None
    auth_session: AuthSession | None = None
    refusal: str | None = None


async def sign_in(
    *,
    session: AsyncSession,
    redis: Redis,
    settings: AdminSettings,
    email: str,
    password: str,
    origin: AuditOrigin,
    user_agent: str | None,
) -> SignIn:
    """Check the credentials (rate-limited like the API's login, by the same counters:
    `admit_login_attempt`, 429 beyond) and open a console session for an operator or admin. A
    refusal is returned, not raised, so that its audit entry commits; it never says whether
    the email exists."""
    attempt = await admit_login_attempt(redis, settings, client=origin.source_ip, email=email)
    try:
        user = await authenticate(session=session, email=email, password=password)
        await attempt.succeeded()
    except (UnauthorizedError, ForbiddenError) as exc:
        refusal = {
            "account_disabled": "This account is disabled.",
            "email_not_verified": "Confirm your email address first.",
        }.get(exc.code, "Incorrect email or password.")
        account = await session.scalar(
            select(col(User.id)).where(func.lower(col(User.email)) == email.strip().lower())
        )
        await _record_refusal(session, redis, settings, email, exc.code, origin, account)
        return SignIn(refusal=refusal)
    if user.role not in STAFF:
        await _record_refusal(session, redis, settings, email, "not_staff", origin, user.id)
        return SignIn(refusal="This account cannot use the console: it is for operators.")

    issued = await open_session(
        session=session,
        settings=settings,
        user=user,
        kind=SessionKind.CONSOLE,
        user_agent=user_agent,
        ip=origin.source_ip,
    )
    console_session = issued.session
    console_session.expires_at = datetime.now(UTC) + timedelta(
        seconds=settings.console_session_ttl_seconds
    )
    console_session.refresh_token_hash = None  # The console never refreshes into API tokens.
    await session.flush()
    await audit.record(
        session,
        actor=AuditActor.of(user),
        action="console.login",
        target_type="session",
        target_id=console_session.id,
        origin=origin,
    )
    return SignIn(user=user, auth_session=console_session)


async def _record_refusal(
    session: AsyncSession,
    redis: Redis,
    settings: AdminSettings,
    email: str,
    reason: str,
    origin: AuditOrigin,
    account: uuid.UUID | None,
) -> None:
    """Audit refused sign-ins, aggregated so that no one can flood the append-only log.

    Refusals are counted in Redis per account (all unknown emails share one count) and per
    window of `CONSOLE_REFUSAL_AUDIT_WINDOW_SECONDS`; only the 1st, 10th, 100th, ... refusal of
    a count writes an entry, carrying the count so far. So a real account's refusals are
    visible at once and in magnitude, and the log grows by a few rows per account and window
    however many attempts are made, from however many addresses and emails.
    """
    window_seconds = settings.console_refusal_audit_window_seconds
    window = int(time.time() // window_seconds)
    counter = f"console-login-refusals:{account or 'unknown-email'}:{window}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, window_seconds + 1)
        count, _ = await pipe.execute()
    if not _is_power_of_ten(int(count)):
        return
    await audit.record(
        session,
        actor=AuditActor(id=None, label=email.strip()[:320] or "(empty)"),
        action="console.login_refused",
        target_type="user" if account else None,
        target_id=account,
        details={
            "reason": reason,
            "refusals_in_window": int(count),
            "window_seconds": window_seconds,
        },
        origin=origin,
    )


def _is_power_of_ten(count: int) -> bool:
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1


async def sign_out(*, session: AsyncSession, user: Principal, origin: AuditOrigin) -> None:
    """End the console session of `user` (its cookie is refused from the next request)."""
    await revoke_session(
        session=session, session_id=user.session_id, user_id=user.id, reason="logout"
    )
    await audit.record(
        session,
        actor=AuditActor.of(user),
        action="console.logout",
        target_type="session",
        target_id=user.session_id,
        origin=origin,
    )
