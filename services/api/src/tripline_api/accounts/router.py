"""Account endpoints: confirm the address, reset or change the password (sign-up is
`POST /v1/users`); the work happens in `accounts.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

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
from tripline_api.limits import (
    PASSWORD_CHANGE,
    PASSWORD_CHANGE_LIMITS,
    PASSWORD_RESET,
    PASSWORD_RESET_LIMITS,
    Limiter,
)
from tripline_api.responses import UNAUTHORIZED, documented_error
from tripline_api.state import ApiSettingsDep
from tripline_common.web import (
    CurrentUser,
    QueueDep,
    SessionDep,
    TokenClaims,
    client_address,
)

router = APIRouter(prefix="/accounts", tags=["accounts"])

TOKEN_ERRORS = {
    **documented_error(400, "`invalid_token`: not a token we issued."),
    **documented_error(410, "`token_used` or `token_expired`."),
}
WEAK = documented_error(422, "`weak_password`: see the rules.")


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
)
async def request_password_reset(
    body: PasswordResetRequest,
    request: Request,
    session: SessionDep,
    queue: QueueDep,
    settings: ApiSettingsDep,
    limiter: Annotated[Limiter, Depends(PASSWORD_RESET_LIMITS)],
) -> ResetRequested:
    await limiter.hit(PASSWORD_RESET, f"reset:ip:{client_address(request)}")
    await limiter.hit(PASSWORD_RESET, f"reset:email:{body.email.lower()}")
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
        **UNAUTHORIZED,
        **documented_error(403, "`wrong_password`: the current one."),
        **WEAK,
    },
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    claims: TokenClaims,
    session: SessionDep,
    limiter: Annotated[Limiter, Depends(PASSWORD_CHANGE_LIMITS)],
) -> Response:
    await limiter.hit(PASSWORD_CHANGE, f"password-change:user:{user.id}")
    await service.change_password(
        session=session,
        user_id=user.id,
        current_session_id=claims.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
