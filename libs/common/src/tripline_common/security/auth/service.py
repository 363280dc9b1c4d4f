"""Logins and sessions: check passwords, open, refresh, list and revoke server-side sessions.

Every access token names its session row; a token is honoured only while that row is neither
revoked nor expired nor idle and its user is active, so logout, an operator's revocation or
disabling a user take effect on the very next request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tripline_common.data import audit
from tripline_common.data.audit import AuditActor, AuditOrigin
from tripline_common.data.models import AuthSession, SessionKind, UsedRefreshToken, User, UserRole
from tripline_common.data.pg import PgExecutor
from tripline_common.platform.errors import ForbiddenError, UnauthorizedError
from tripline_common.platform.settings import CommonSettings
from tripline_common.security.auth.tokens import (
    AccessClaims,
    create_access_token,
    hash_token,
    new_opaque_token,
)
from tripline_common.security.passwords import verify_dummy_password, verify_password

log = structlog.get_logger("tripline.auth")


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request: the account's fields, not an ORM row.

    A handler that changes the account loads the row itself; everything else (ownership checks,
    roles, display) needs only these, read by one raw query per request.
    """

    id: uuid.UUID
    email: str
    display_name: str
    role: UserRole
    is_active: bool
    created_at: datetime
    session_id: uuid.UUID


def live_session_sql(session_param: str, user_param: str) -> str:
    """The SQL condition "this session is live and its user active", over `auth_sessions s`
    joined to `users u`, with the session and user IDs as the given query parameters ($n).

    The one definition of a valid session for raw queries, so a hot path can check it in the
    same round trip as its own read. An API session idle past `idle_expires_at` is dead too:
    that deadline is written only when a token is issued, so the check adds no write.
    """
    return (
        f"s.id = {session_param} AND s.user_id = {user_param} AND s.revoked_at IS NULL "
        "AND s.expires_at > now() AND (s.idle_expires_at IS NULL OR s.idle_expires_at > now()) "
        "AND u.is_active"
    )


_PRINCIPAL_QUERY = f"""
SELECT u.id, u.email, u.display_name, u.role, u.is_active, u.created_at
FROM auth_sessions s JOIN users u ON u.id = s.user_id
WHERE {live_session_sql("$1", "$2")}
"""  # noqa: S608 - a fixed condition with numbered parameters, no input.


@dataclass(frozen=True)
class IssuedTokens:
    """What a login or a refresh hands back; the refresh token is shown this once."""

    access_token: str
    refresh_token: str
    expires_in: int
    session: AuthSession


async def authenticate(*, session: AsyncSession, email: str, password: str) -> User:
    """The user with this email and password, or 401. Unknown emails cost as much time as
    wrong passwords; a disabled or unverified account is refused only after a correct password,
    so neither state is revealed to someone guessing."""
    user = await session.scalar(select(User).where(func.lower(col(User.email)) == email.lower()))
    if user is None:
        await verify_dummy_password(password)
        raise UnauthorizedError("Incorrect email or password.", code="invalid_credentials")
    if not await verify_password(password, user.password_hash):
        raise UnauthorizedError("Incorrect email or password.", code="invalid_credentials")
    if not user.is_active:
        raise UnauthorizedError("This account is disabled.", code="account_disabled")
    if user.email_verified_at is None:
        raise ForbiddenError(
            "Confirm your email address first: follow the link we mailed you.",
            code="email_not_verified",
        )
    return user


async def open_session(
    *,
    session: AsyncSession,
    settings: CommonSettings,
    user: User,
    kind: SessionKind = SessionKind.API,
    user_agent: str | None = None,
    ip: str | None = None,
) -> IssuedTokens:
    """Create a session row for `user` and issue its first access and refresh tokens."""
    now = datetime.now(UTC)
    refresh = new_opaque_token()
    auth_session = AuthSession(
        user_id=user.id,
        kind=kind,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        refresh_token_hash=hash_token(refresh),
        idle_expires_at=_idle_deadline(settings, now) if kind is SessionKind.API else None,
        user_agent=(user_agent or "")[:500] or None,
        ip=(ip or "")[:45] or None,
    )
    session.add(auth_session)
    user.last_login_at = now
    await session.flush()
    log.info("session_opened", user_id=str(user.id), session_id=str(auth_session.id))
    return _tokens(settings, user, auth_session, refresh)


REUSE_REASON = "refresh_token_reused"
"""The `revoked_reason` of a session ended because a spent refresh token came back."""

IDLE_REASON = "idle_timeout"
"""The `revoked_reason` of a session ended because it went unused too long."""


async def refresh_session(
    *,
    session: AsyncSession,
    settings: CommonSettings,
    refresh_token: str,
    origin: AuditOrigin | None = None,
) -> IssuedTokens:
    """Rotate a refresh token: the old one stops working, a new pair is issued.

    Every refresh token a session has spent is kept (hashed) until the session is deleted.
    Presenting one again means it leaked (the thief or the owner used it first): the whole
    session is revoked (`refresh_token_reused`, with an audit entry `session.refresh_reuse`)
    and every token of it, access and newest refresh token alike, is refused from then on. Two
    refreshes racing with the same token are serialised by the row lock: one rotates, the
    other is reuse. An API session not refreshed for `API_SESSION_IDLE_TIMEOUT_SECONDS` is
    revoked (`idle_timeout`) instead of refreshed. These revocations commit before the 401 is
    raised, so the error does not roll them back.
    """
    token_hash = hash_token(refresh_token)
    auth_session = await session.scalar(
        select(AuthSession)
        .where(col(AuthSession.refresh_token_hash) == token_hash)
        .with_for_update()
    )
    now = datetime.now(UTC)
    if auth_session is None:
        # Read after the lock above: a refresh that won a race with this token has committed,
        # so its spent hash is visible here.
        spent = await session.scalar(
            select(col(UsedRefreshToken.session_id)).where(
                col(UsedRefreshToken.token_hash) == token_hash
            )
        )
        if spent is None:
            raise UnauthorizedError("The refresh token is not valid.", code="invalid_refresh_token")
        await _revoke_for(session, spent, REUSE_REASON, origin, audited=True)
        raise UnauthorizedError("The session has ended.", code="session_revoked")
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise UnauthorizedError("The session has ended.", code="session_revoked")
    if auth_session.idle_expires_at is not None and auth_session.idle_expires_at <= now:
        await _revoke_for(session, auth_session.id, IDLE_REASON, origin, audited=False)
        raise UnauthorizedError("The session has ended.", code="session_revoked")
    user = await session.get(User, auth_session.user_id)
    if user is None or not user.is_active:
        raise UnauthorizedError("This account is disabled.", code="account_disabled")
    refresh = new_opaque_token()
    session.add(UsedRefreshToken(token_hash=token_hash, session_id=auth_session.id, used_at=now))
    auth_session.refresh_token_hash = hash_token(refresh)
    auth_session.last_seen_at = now
    if auth_session.kind is SessionKind.API:
        auth_session.idle_expires_at = _idle_deadline(settings, now)
    await session.flush()
    return _tokens(settings, user, auth_session, refresh)


async def _revoke_for(
    session: AsyncSession,
    session_id: uuid.UUID,
    reason: str,
    origin: AuditOrigin | None,
    *,
    audited: bool,
) -> None:
    """Revoke a live session on a refused refresh and commit at once (the caller raises next).

    Only the request that ends the session writes (and audits): replaying a spent token at a
    session already ended writes nothing, so it cannot grow the audit log.
    """
    user_id = await session.scalar(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason, refresh_token_hash=None)
        .returning(col(AuthSession.user_id))
    )
    if user_id is None:
        return
    user = await session.get(User, user_id)
    if audited and user is not None:
        await audit.record(
            session,
            actor=AuditActor.of(user),
            action="session.refresh_reuse",
            target_type="session",
            target_id=session_id,
            details={"reason": reason},
            origin=origin,
        )
    await session.commit()
    log.warning("session_revoked", session_id=str(session_id), reason=reason)


def _idle_deadline(settings: CommonSettings, now: datetime) -> datetime:
    return now + timedelta(seconds=settings.api_session_idle_timeout_seconds)


async def resolve_principal(*, pg: PgExecutor, claims: AccessClaims) -> Principal:
    """The active user behind a live session, in one query; 401 when the session has ended.

    Runs on every authenticated request, so it is one parameterised query on the raw pool.
    """
    row = await pg.fetchrow(_PRINCIPAL_QUERY, claims.session_id, claims.user_id)
    if row is None:
        raise UnauthorizedError("The session has ended; log in again.", code="session_revoked")
    return Principal(**dict(row) | {"role": UserRole(row["role"])}, session_id=claims.session_id)


async def list_sessions(*, session: AsyncSession, user_id: uuid.UUID) -> list[AuthSession]:
    """The user's sessions, newest first (revoked and expired ones included, for auditing)."""
    rows = await session.scalars(
        select(AuthSession)
        .where(col(AuthSession.user_id) == user_id)
        .order_by(col(AuthSession.created_at).desc())
        .limit(100)
    )
    return list(rows)


async def revoke_session(
    *, session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID | None, reason: str
) -> bool:
    """Revoke one session (of `user_id`, unless None: operators may revoke any).

    Returns False when no such session exists (for that user). Revoking twice is harmless.
    """
    conditions = [col(AuthSession.id) == session_id]
    if user_id is not None:
        conditions.append(col(AuthSession.user_id) == user_id)
    found = await session.scalar(select(col(AuthSession.id)).where(*conditions))
    if found is None:
        return False
    await session.execute(
        update(AuthSession)
        .where(*conditions, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason, refresh_token_hash=None)
    )
    log.info("session_revoked", session_id=str(session_id), reason=reason)
    return True


def _tokens(
    settings: CommonSettings, user: User, auth_session: AuthSession, refresh: str
) -> IssuedTokens:
    access = create_access_token(
        settings, user_id=user.id, session_id=auth_session.id, role=user.role.value
    )
    return IssuedTokens(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
        session=auth_session,
    )
