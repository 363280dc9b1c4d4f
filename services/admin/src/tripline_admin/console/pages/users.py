"""Console pages for user accounts: search, a user's page, and its forms."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from tripline_admin.audit.service import entries_about
from tripline_admin.console.paging import Pager, console_page_params, counted
from tripline_admin.console.rendering import redirect, render
from tripline_admin.console.security import ConsoleAdmin, ConsoleUser
from tripline_admin.devices.service import devices_of
from tripline_admin.trips.service import trips_of
from tripline_admin.users import service
from tripline_admin.users.schemas import SessionAdmin, UserFilters, UserPage
from tripline_common.data import AuditOrigin, AuditOriginDep
from tripline_common.data.models import UserRole
from tripline_common.security import Principal
from tripline_common.web import PageParams, SessionDep

router = APIRouter(prefix="/users")

UserPageParams = Annotated[PageParams, Depends(console_page_params(service.USER_SORT, UserPage))]
ACTIVE_CHOICES = {"enabled": True, "disabled": False}


def _role(value: str | None) -> UserRole | None:
    return UserRole(value) if value in {role.value for role in UserRole} else None


@router.get("")
async def users_page(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    page: UserPageParams,
    q: Annotated[str | None, Query(max_length=100)] = None,
    role: Annotated[str | None, Query(max_length=20)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    filters = UserFilters(q=q, role=_role(role), active=ACTIVE_CHOICES.get(status or ""))
    result = await service.search_users(session=session, filters=filters, page=counted(page))
    return render(
        request,
        "users.html",
        {
            "nav": "users",
            "users": result.rows,
            "pager": Pager.of(request, result),
            "q": q or "",
            "role": filters.role.value if filters.role else "",
            "status": status if status in ACTIVE_CHOICES else "",
            "roles": list(UserRole),
        },
    )


@router.get("/{user_id}")
async def user_page(
    request: Request, user_id: uuid.UUID, user: ConsoleUser, session: SessionDep
) -> Response:
    account = await service.get_user(session=session, user_id=user_id)
    now = datetime.now(UTC)
    sessions = [
        SessionAdmin.of(row, now)
        for row in await service.user_sessions(session=session, user_id=user_id)
    ]
    return render(
        request,
        "user.html",
        {
            "nav": "users",
            "account": account,
            "sessions": sessions,
            "live_sessions": sum(1 for s in sessions if s.active),
            "devices": await devices_of(session=session, owner_id=user_id),
            "trips": await trips_of(session=session, owner_id=user_id),
            "history": await entries_about(
                session=session, target_type="user", target_id=str(user_id), limit=10
            ),
            "roles": list(UserRole),
        },
    )


@router.post("/{user_id}/disable")
async def disable_user(
    request: Request,
    user_id: uuid.UUID,
    user: ConsoleUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> Response:
    return await _set_active(
        request, user_id, actor=user, session=session, origin=origin, active=False
    )


@router.post("/{user_id}/enable")
async def enable_user(
    request: Request,
    user_id: uuid.UUID,
    user: ConsoleUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> Response:
    return await _set_active(
        request, user_id, actor=user, session=session, origin=origin, active=True
    )


async def _set_active(
    request: Request,
    user_id: uuid.UUID,
    *,
    actor: Principal,
    session: AsyncSession,
    origin: AuditOrigin,
    active: bool,
) -> Response:
    # The one body of the enable and disable buttons: the change, then the page saying so.
    account = await service.set_active(
        session=session, actor=actor, user_id=user_id, active=active, origin=origin
    )
    done = "can sign in again." if active else "is disabled; their sessions have ended."
    return redirect(request, f"/console/users/{user_id}", ("success", f"{account.email} {done}"))


@router.post("/{user_id}/role")
async def change_role(
    request: Request,
    user_id: uuid.UUID,
    admin: ConsoleAdmin,
    session: SessionDep,
    origin: AuditOriginDep,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    new_role = _role(role)
    if new_role is None:
        return redirect(request, f"/console/users/{user_id}", ("error", "Choose a valid role."))
    account = await service.change_role(
        session=session, actor=admin, user_id=user_id, role=new_role, origin=origin
    )
    return redirect(
        request,
        f"/console/users/{user_id}",
        ("success", f"{account.email} is now {account.role.value}."),
    )


@router.post("/{user_id}/sessions/{session_id}/revoke")
async def revoke_session(
    request: Request,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    user: ConsoleUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> Response:
    await service.revoke_user_session(
        session=session, actor=user, user_id=user_id, session_id=session_id, origin=origin
    )
    return redirect(request, f"/console/users/{user_id}", ("success", "The session has ended."))


@router.post("/{user_id}/sessions/revoke-all")
async def revoke_all_sessions(
    request: Request,
    user_id: uuid.UUID,
    user: ConsoleUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> Response:
    count = await service.revoke_all_user_sessions(
        session=session, actor=user, user_id=user_id, origin=origin
    )
    noun = "session" if count == 1 else "sessions"
    return redirect(request, f"/console/users/{user_id}", ("success", f"{count} {noun} ended."))
