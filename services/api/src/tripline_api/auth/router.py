"""Authentication endpoints: OAuth2 password flow, refresh, logout, the user's sessions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from tripline_api.auth.schemas import RefreshRequest, SessionPublic, TokenPair
from tripline_api.limits import LOGIN_LIMITS, Limiter
from tripline_api.responses import UNAUTHORIZED, documented_error
from tripline_common.data import AuditOriginDep
from tripline_common.platform import NotFoundError
from tripline_common.security.auth import service
from tripline_common.web import (
    CurrentUser,
    SessionDep,
    SettingsDep,
    TokenClaims,
    client_address,
)

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenPair,
    summary="Log in (OAuth2 password flow)",
    description="Exchanges email (`username`) and password for a short-lived access token and "
    "a refresh token, and opens a server-side session. Attempts are rate-limited per client "
    "address (`LOGIN_CLIENT_RATE_LIMIT`), and failures per account from one client address "
    "(`LOGIN_RATE_LIMIT`) and per account from all addresses (`LOGIN_ACCOUNT_RATE_LIMIT`), so "
    "one client's failures do not lock the owner out elsewhere.",
    responses=documented_error(401, "Wrong credentials or disabled account."),
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    limiter: Annotated[Limiter, Depends(LOGIN_LIMITS)],
) -> TokenPair:
    client = client_address(request)
    attempt = await limiter.admit_login(form.username)
    user = await service.authenticate(session=session, email=form.username, password=form.password)
    await attempt.succeeded()
    issued = await service.open_session(
        session=session,
        settings=settings,
        user=user,
        user_agent=request.headers.get("user-agent"),
        ip=client,
    )
    return TokenPair(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Rotate the refresh token",
    description="Returns a new access and refresh token; the old refresh token stops working. "
    "Presenting a refresh token that was already used answers 401 and revokes its whole "
    "session (it has leaked): from then on its access token and its newest refresh token are "
    "refused too, and the audit log records `session.refresh_reuse`. Of two refreshes racing "
    "with the same token, one succeeds and the other counts as reuse. A session not refreshed "
    "for `API_SESSION_IDLE_TIMEOUT_SECONDS` (default 7 days) has ended: 401.",
    responses=UNAUTHORIZED,
)
async def refresh(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep, origin: AuditOriginDep
) -> TokenPair:
    issued = await service.refresh_session(
        session=session, settings=settings, refresh_token=body.refresh_token, origin=origin
    )
    return TokenPair(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out",
    description="Revokes the session of this token: its access and refresh tokens stop "
    "working on the next request.",
    responses=UNAUTHORIZED,
)
async def logout(user: CurrentUser, claims: TokenClaims, session: SessionDep) -> None:
    await service.revoke_session(
        session=session, session_id=claims.session_id, user_id=user.id, reason="logout"
    )


@router.get(
    "/sessions",
    response_model=list[SessionPublic],
    summary="List my sessions",
    description="The user's sessions, newest first, with the current one marked.",
    responses=UNAUTHORIZED,
)
async def list_my_sessions(
    user: CurrentUser, claims: TokenClaims, session: SessionDep
) -> list[SessionPublic]:
    sessions = await service.list_sessions(session=session, user_id=user.id)
    return [
        SessionPublic.model_validate(s).model_copy(update={"current": s.id == claims.session_id})
        for s in sessions
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of my sessions",
    description="Ends a session (e.g. a lost phone). Idempotent: revoking twice is a 204.",
    responses={**UNAUTHORIZED, **documented_error(404, "No such session.")},
)
async def revoke_my_session(session_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> None:
    if not await service.revoke_session(
        session=session, session_id=session_id, user_id=user.id, reason="revoked_by_user"
    ):
        raise NotFoundError("Session not found.")
