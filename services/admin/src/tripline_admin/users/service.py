"""Operators' work on user accounts: search, roles, disabling, sessions. Every change is audited.

Rules beyond the route's role check, enforced here so the JSON API and the console share them:
an operator manages plain users only (operator and admin accounts need an admin), and nobody
changes the role of, or disables, their own account (no one locks themselves out by mistake).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tripline_admin.search import as_uuid, like_pattern
from tripline_admin.users.schemas import UserFilters
from tripline_common.data import AuditActor, AuditOrigin, audit
from tripline_common.data.models import AuthSession, User, UserRole
from tripline_common.platform import ForbiddenError, NotFoundError
from tripline_common.security import Principal, list_sessions, revoke_session
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

USER_SORT = SortSpec(
    columns={"created_at": col(User.created_at), "email": col(User.email)},
    tiebreaker=col(User.id),
    default="-created_at",
)
"""What user lists may be sorted on."""


async def search_users(
    *, session: AsyncSession, filters: UserFilters, page: PageParams
) -> PageResult[User]:
    """One page of users matching `filters`."""
    statement = select(User)
    if filters.q and filters.q.strip():
        text = filters.q.strip()
        user_id = as_uuid(text)
        if user_id is not None:
            statement = statement.where(col(User.id) == user_id)
        else:
            pattern = like_pattern(text)
            statement = statement.where(
                or_(
                    col(User.email).ilike(pattern, escape="\\"),
                    col(User.display_name).ilike(pattern, escape="\\"),
                )
            )
    if filters.role is not None:
        statement = statement.where(col(User.role) == filters.role)
    if filters.active is not None:
        statement = statement.where(col(User.is_active) == filters.active)
    return await fetch_page(session, statement, page, USER_SORT)


async def get_user(*, session: AsyncSession, user_id: uuid.UUID, lock: bool = False) -> User:
    """The user, or 404."""
    statement = select(User).where(col(User.id) == user_id)
    if lock:
        statement = statement.with_for_update()
    user = await session.scalar(statement)
    if user is None:
        raise NotFoundError("User not found.", code="user_not_found")
    return user


async def get_user_by_email(*, session: AsyncSession, email: str) -> User:
    """The user with this email (in any case), or 404."""
    user = await session.scalar(
        select(User).where(func.lower(col(User.email)) == email.strip().lower())
    )
    if user is None:
        raise NotFoundError(f"No user has the email {email.strip()!r}.", code="user_not_found")
    return user


def _ensure_may_manage(actor: Principal, target: User, *, own_account_allowed: bool) -> None:
    if target.id == actor.id:
        if not own_account_allowed:
            raise ForbiddenError(
                "You cannot do this to your own account; ask another admin.", code="own_account"
            )
        return
    if target.role != UserRole.USER and actor.role != UserRole.ADMIN:
        raise ForbiddenError(
            "Only an admin can manage operator and admin accounts.", code="admin_required"
        )


async def change_role(
    *,
    session: AsyncSession,
    actor: Principal,
    user_id: uuid.UUID,
    role: UserRole,
    origin: AuditOrigin,
) -> User:
    """Give a user another role (admins only: the route checks). Takes effect on the user's
    next request, since every request reads the role from the database."""
    user = await get_user(session=session, user_id=user_id, lock=True)
    _ensure_may_manage(actor, user, own_account_allowed=False)
    if user.role != role:
        previous = user.role
        user.role = role
        await audit.record(
            session,
            actor=AuditActor.of(actor),
            action="user.role_change",
            target_type="user",
            target_id=user.id,
            details={"email": user.email, "from": previous, "to": role},
            origin=origin,
        )
    await session.flush()
    return user


async def set_active(
    *,
    session: AsyncSession,
    actor: Principal,
    user_id: uuid.UUID,
    active: bool,
    origin: AuditOrigin,
) -> User:
    """Enable or disable an account. Disabling also revokes every live session, so enabling
    it later does not bring back tokens that were out there."""
    user = await get_user(session=session, user_id=user_id, lock=True)
    _ensure_may_manage(actor, user, own_account_allowed=False)
    if user.is_active == active:
        return user
    user.is_active = active
    details: dict[str, object] = {"email": user.email}
    if not active:
        details["sessions_revoked"] = await _revoke_live_sessions(
            session=session, user_id=user.id, reason="user_disabled"
        )
    await audit.record(
        session,
        actor=AuditActor.of(actor),
        action="user.enable" if active else "user.disable",
        target_type="user",
        target_id=user.id,
        details=details,
        origin=origin,
    )
    await session.flush()
    return user


async def user_sessions(*, session: AsyncSession, user_id: uuid.UUID) -> list[AuthSession]:
    """The user's sessions, newest first (404 for an unknown user)."""
    await get_user(session=session, user_id=user_id)
    return await list_sessions(session=session, user_id=user_id)


async def revoke_user_session(
    *,
    session: AsyncSession,
    actor: Principal,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    origin: AuditOrigin,
) -> None:
    """End one session of a user; their tokens (or console cookie) stop working at once."""
    user = await get_user(session=session, user_id=user_id)
    _ensure_may_manage(actor, user, own_account_allowed=True)
    found = await revoke_session(
        session=session, session_id=session_id, user_id=user_id, reason="revoked_by_operator"
    )
    if not found:
        raise NotFoundError("Session not found.", code="session_not_found")
    await audit.record(
        session,
        actor=AuditActor.of(actor),
        action="session.revoke",
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "session_id": session_id},
        origin=origin,
    )


async def revoke_all_user_sessions(
    *, session: AsyncSession, actor: Principal, user_id: uuid.UUID, origin: AuditOrigin
) -> int:
    """End every live session of a user (a stolen laptop); returns how many were live."""
    user = await get_user(session=session, user_id=user_id)
    _ensure_may_manage(actor, user, own_account_allowed=True)
    revoked = await _revoke_live_sessions(
        session=session, user_id=user.id, reason="revoked_by_operator"
    )
    await audit.record(
        session,
        actor=AuditActor.of(actor),
        action="session.revoke_all",
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "sessions_revoked": revoked},
        origin=origin,
    )
    return revoked


async def _revoke_live_sessions(*, session: AsyncSession, user_id: uuid.UUID, reason: str) -> int:
    now = datetime.now(UTC)
    result = await session.execute(
        update(AuthSession)
        .where(
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > now,
        )
        .values(revoked_at=now, revoked_reason=reason, refresh_token_hash=None)
        .returning(col(AuthSession.id))
    )
    return len(result.all())
