"""Account endpoints: confirm the address, reset or change the password (sign-up is
`POST /v1/users`); the work happens in `accounts.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from tripline_api.accounts import service
from tripline_api.accounts.schemas import (
    RESET_MESSAGE,
    EmailVerified,
    PasswordChange,
    PasswordReset,
    PasswordResetRequest,
    ResetRequested,
    TokenIn,
)
from tripline_api.limits import enforce_limits
from tripline_api.state import ApiSettingsDep
from tripline_common.platform import ErrorResponse
from tripline_common.web import (
    CurrentUser,
    QueueDep,
    RedisDep,
    SessionDep,
    SettingsDep,
    TokenClaims,
    client_address,
)

router = APIRouter(prefix="/accounts", tags=["accounts"])

TOKEN_ERRORS = {
    400: {"model": ErrorResponse, "description": "`invalid_token`: not a token we issued."},
    410: {"model": ErrorResponse, "description": "`token_used` or `token_expired`."},
}
WEAK = {422: {"model": ErrorResponse, "description": "`weak_password`: see the rules."}}
LIMITED = {429: {"model": ErrorResponse, "description": "Too many attempts; see `Retry-After`."}}


@router.post(
    "/verify-email",
    response_model=EmailVerified,
    summary="Confirm an email address",
    description="Uses the token mailed at sign-up: the account can log in from now on, with "
    "the password of the sign-up that link was mailed for. The token works once.",
    responses=TOKEN_ERRORS,
)
async def verify_email(body: TokenIn, session: SessionDep) -> EmailVerified:
    await service.verify_email(session=session, token=body.token)
    return EmailVerified(status="verified")


@router.get(
    "/verify-email",
    response_model=EmailVerified,
    summary="Confirm an email address (the mailed link)",
    description="The link in the sign-up mail; same as the POST.",
    responses=TOKEN_ERRORS,
)
async def verify_email_link(
    token: Annotated[str, Query(min_length=1, max_length=200)], session: SessionDep
) -> EmailVerified:
    await service.verify_email(session=session, token=token)
    return EmailVerified(status="verified")


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ResetRequested,
    summary="Ask for a password-reset link",
    description="Mails a single-use reset link if an active account uses this address. The "
    "answer is the same either way. Rate-limited per client address and per email address.",
    responses=LIMITED,
)
async def request_password_reset(
    body: PasswordResetRequest,
    request: Request,
    session: SessionDep,
    queue: QueueDep,
    settings: ApiSettingsDep,
    redis: RedisDep,
) -> ResetRequested:
    await enforce_limits(
        request,
        redis,
        [f"reset:ip:{client_address(request)}", f"reset:email:{body.email.lower()}"],
        settings.password_reset_rate_limit,
        settings.password_reset_rate_window_seconds,
        "password_reset",
    )
    await service.request_password_reset(
        session=session, queue=queue, settings=settings, email=body.email
    )
    return ResetRequested(status="check_email", message=RESET_MESSAGE)


@router.post(
    "/password-reset",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with a reset link",
    description="Uses the mailed reset token once: sets the new password, confirms the "
    "address, and revokes every session of the account.",
    responses={**TOKEN_ERRORS, **WEAK},
)
async def reset_password(body: PasswordReset, session: SessionDep) -> Response:
    await service.reset_password(session=session, token=body.token, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password",
    description="Needs the current password. The user's other sessions are revoked; this one "
    "stays. Attempts are rate-limited per user like logins.",
    responses={
        401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."},
        403: {"model": ErrorResponse, "description": "`wrong_password`: the current one."},
        **WEAK,
        **LIMITED,
    },
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    claims: TokenClaims,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
) -> Response:
    await enforce_limits(
        request,
        redis,
        [f"password-change:user:{user.id}"],
        settings.login_rate_limit,
        settings.login_rate_window_seconds,
        "password_change",
    )
    await service.change_password(
        session=session,
        user_id=user.id,
        current_session_id=claims.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
