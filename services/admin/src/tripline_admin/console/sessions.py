"""Signing in to and out of the console: checks, the `auth_sessions` row, the audit trail.

A console session is an ordinary row of `auth_sessions` (kind `console`), so operators see and
revoke it like any API session, and disabling a user ends it. It has no refresh token (the
console never hands one out) and a shorter life than an API session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_admin.console.security import STAFF
from tripline_admin.settings import AdminSettings
from tripline_common import audit
from tripline_common.audit import AuditActor, AuditOrigin
from tripline_common.auth.service import Principal, authenticate, open_session, revoke_session
from tripline_common.errors import ForbiddenError, UnauthorizedError
from tripline_common.models import AuthSession, SessionKind, User
from tripline_common.ratelimit import enforce_rate_limit


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
    """Check the credentials (rate-limited per address and per email, 429 beyond) and open a
    console session for an operator or admin. A refusal is returned, not raised, so that its
    audit entry commits; it never says whether the email exists."""
    for key in (f"console-login:ip:{origin.source_ip}", f"console-login:email:{email.lower()}"):
        await enforce_rate_limit(
            redis,
            key,
            limit=settings.login_rate_limit,
            window_seconds=settings.login_rate_window_seconds,
        )
    try:
        user = await authenticate(session=session, email=email, password=password)
    except (UnauthorizedError, ForbiddenError) as exc:
        refusal = {
            "account_disabled": "This account is disabled.",
            "email_not_verified": "Confirm your email address first.",
        }.get(exc.code, "Incorrect email or password.")
        await _record_refusal(session, email, exc.code, origin)
        return SignIn(refusal=refusal)
    if user.role not in STAFF:
        await _record_refusal(session, email, "not_staff", origin)
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
    session: AsyncSession, email: str, reason: str, origin: AuditOrigin
) -> None:
    await audit.record(
        session,
        actor=AuditActor(id=None, label=email.strip()[:320] or "(empty)"),
        action="console.login_refused",
        details={"reason": reason},
        origin=origin,
    )


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
