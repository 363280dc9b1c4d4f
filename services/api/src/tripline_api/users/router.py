"""Users endpoints: sign-up (its work is in `accounts.service`) and the current user."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from tripline_api.accounts import service as accounts_service
from tripline_api.accounts.schemas import SIGN_UP_MESSAGE, SignUpAccepted
from tripline_api.limits import enforce_limits
from tripline_api.state import ApiSettingsDep
from tripline_api.users.schemas import UserCreate, UserPublic
from tripline_common.platform import ErrorResponse
from tripline_common.web import CurrentUser, QueueDep, RedisDep, SessionDep, client_address

router = APIRouter(prefix="/users", tags=["users"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignUpAccepted,
    summary="Sign up",
    description="Starts a sign-up and always answers the same 202, whether or not the address "
    "already has an account: a new address is mailed a single-use link that confirms it "
    "(`/v1/accounts/verify-email`), after which the account (role `user`) can log in; the owner "
    "of a taken address is mailed a password-reset link instead. A new sign-up for an address "
    "still waiting for confirmation mails a new link. The password is checked against the "
    "rules (`weak_password`, 422) and stored as an Argon2 hash. Rate-limited per client "
    "address and for all clients together (429).",
    responses={
        422: {"model": ErrorResponse, "description": "Invalid input or `weak_password`."},
        429: {"model": ErrorResponse, "description": "Too many sign-ups; see `Retry-After`."},
    },
)
async def register(
    data: UserCreate,
    request: Request,
    session: SessionDep,
    queue: QueueDep,
    settings: ApiSettingsDep,
    redis: RedisDep,
) -> SignUpAccepted:
    await enforce_limits(
        request,
        redis,
        [f"signup:ip:{client_address(request)}"],
        settings.signup_rate_limit,
        settings.signup_rate_window_seconds,
        "signup",
    )
    await enforce_limits(
        request,
        redis,
        ["signup:all"],
        settings.signup_global_rate_limit,
        settings.signup_global_rate_window_seconds,
        "signup",
    )
    await accounts_service.sign_up(
        session=session,
        queue=queue,
        settings=settings,
        email=data.email,
        display_name=data.display_name,
        password=data.password,
    )
    return SignUpAccepted(status="check_email", message=SIGN_UP_MESSAGE)


@router.get(
    "/me",
    response_model=UserPublic,
    summary="Who am I",
    description="The user of the access token.",
    responses={401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."}},
)
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
