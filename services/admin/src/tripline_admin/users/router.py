"""`/v1/users`: operators search accounts, disable them, end their sessions; admins set roles.
Declarations only; the work happens in `users.service`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from tripline_admin.access import ADMIN_ONLY, INVALID_LIST_QUERY, not_found
from tripline_admin.users import service
from tripline_admin.users.schemas import (
    RoleChange,
    SessionAdmin,
    SessionsRevoked,
    UserAdmin,
    UserFilters,
    UserPage,
)
from tripline_common.data import AuditOriginDep
from tripline_common.web import OperatorUser, PageParams, SessionDep, page_params

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[uuid.UUID, Path(description="The user's ID.")]
SessionId = Annotated[uuid.UUID, Path(description="The session's ID.")]
UserPageParams = Annotated[PageParams, Depends(page_params(service.USER_SORT, UserPage))]
NO_USER = not_found("user")


@router.get(
    "",
    response_model=UserPage,
    summary="Search users",
    description="Accounts matching a part of their email or name (or their ID), a role and "
    "whether they are enabled; a page at a time (`limit` + `offset`, or `cursor`).",
    responses=INVALID_LIST_QUERY,
)
async def search_users(
    session: SessionDep, filters: Annotated[UserFilters, Query()], page: UserPageParams
) -> UserPage:
    result = await service.search_users(session=session, filters=filters, page=page)
    return page.respond(result)  # type: ignore[no-any-return]


@router.get(
    "/{user_id}",
    response_model=UserAdmin,
    summary="View a user",
    description="One account, as operators see it.",
    responses=NO_USER,
)
async def get_user(user_id: UserId, session: SessionDep) -> UserAdmin:
    return UserAdmin.model_validate(await service.get_user(session=session, user_id=user_id))


@router.put(
    "/{user_id}/role",
    response_model=UserAdmin,
    summary="Change a user's role (admins)",
    description="Sets the role; it applies from the user's next request. Admins only; nobody "
    "changes their own role. Audited as `user.role_change`.",
    dependencies=[ADMIN_ONLY],
    responses=NO_USER,
)
async def change_role(
    user_id: UserId,
    body: RoleChange,
    actor: OperatorUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> UserAdmin:
    user = await service.change_role(
        session=session, actor=actor, user_id=user_id, role=body.role, origin=origin
    )
    return UserAdmin.model_validate(user)


@router.post(
    "/{user_id}/disable",
    response_model=UserAdmin,
    summary="Disable a user",
    description="The account can no longer log in and every live session is revoked at once "
    "(API tokens and console cookies stop working on their next request). Idempotent. "
    "Operator and admin accounts need an admin. Audited as `user.disable`.",
    responses=NO_USER,
)
async def disable_user(
    user_id: UserId, actor: OperatorUser, session: SessionDep, origin: AuditOriginDep
) -> UserAdmin:
    user = await service.set_active(
        session=session, actor=actor, user_id=user_id, active=False, origin=origin
    )
    return UserAdmin.model_validate(user)


@router.post(
    "/{user_id}/enable",
    response_model=UserAdmin,
    summary="Enable a user",
    description="The account can log in again (sessions revoked when it was disabled stay "
    "revoked). Idempotent. Audited as `user.enable`.",
    responses=NO_USER,
)
async def enable_user(
    user_id: UserId, actor: OperatorUser, session: SessionDep, origin: AuditOriginDep
) -> UserAdmin:
    user = await service.set_active(
        session=session, actor=actor, user_id=user_id, active=True, origin=origin
    )
    return UserAdmin.model_validate(user)


@router.get(
    "/{user_id}/sessions",
    response_model=list[SessionAdmin],
    summary="List a user's sessions",
    description="API and console logins, newest first (the latest 100), revoked and expired "
    "ones included.",
    responses=NO_USER,
)
async def list_sessions(user_id: UserId, session: SessionDep) -> list[SessionAdmin]:
    now = datetime.now(UTC)
    rows = await service.user_sessions(session=session, user_id=user_id)
    return [SessionAdmin.of(row, now) for row in rows]


@router.delete(
    "/{user_id}/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a session",
    description="Ends one session: its tokens (or console cookie) are refused from the next "
    "request, by every app. Idempotent. Audited as `session.revoke`.",
    responses=not_found("user or session"),
)
async def revoke_session(
    user_id: UserId,
    session_id: SessionId,
    actor: OperatorUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> None:
    await service.revoke_user_session(
        session=session, actor=actor, user_id=user_id, session_id=session_id, origin=origin
    )


@router.delete(
    "/{user_id}/sessions",
    response_model=SessionsRevoked,
    summary="Revoke all of a user's sessions",
    description="Ends every live session of the user (a lost laptop, a leaked token). "
    "Audited as `session.revoke_all`.",
    responses=NO_USER,
)
async def revoke_all_sessions(
    user_id: UserId, actor: OperatorUser, session: SessionDep, origin: AuditOriginDep
) -> SessionsRevoked:
    revoked = await service.revoke_all_user_sessions(
        session=session, actor=actor, user_id=user_id, origin=origin
    )
    return SessionsRevoked(revoked=revoked)
